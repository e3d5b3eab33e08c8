"""The real-node bed by name (tests/e2e/controlplane/realnodes.py), the image names
`make images` gives, and pods as network probes, for the real-node tests
(test_realnodes_*.py, test_quickstart.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from llmplatform_testing import ROOT, scripts
from llmplatform_testing.controlplane import BED_DIR, Cluster

bed_nodes: ModuleType = scripts.load(BED_DIR / "realnodes.py", "realnodes")
"""tests/e2e/controlplane/realnodes.py (a script of the bed, untyped: loaded, not type-checked)."""


def images_build() -> ModuleType:
    """images/build.py, loaded under its own name (``build`` is the control-plane builder)."""
    return scripts.load(ROOT / "images" / "build.py", "llmplatform_images_build")


def image_name(target: str) -> str:
    """The name `make images` gives a target's image (the chart's default repository and tag)."""
    return str(images_build().image_name(target))


# --------------------------------------------------------------------------- pods as probes


def restricted_pod(name: str, labels: dict[str, str], image: str = "") -> dict[str, Any]:
    """The mock upstream as a pod that passes `restricted` Pod Security with a read-only root:
    it serves on 8000 (a target to connect to) and has Python (a client to connect from)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "main",
                    "image": image or image_name("mock-upstream"),
                    "imagePullPolicy": "Never",
                    "ports": [{"name": "http", "containerPort": 8000}],
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def run_pod(c: Cluster, ns: str, name: str, labels: dict[str, str] | None = None) -> str:
    """Start `restricted_pod` in `ns`, wait until it is Ready; its pod IP."""
    c.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(restricted_pod(name, labels or {"app": name})))
    c.kubectl("-n", ns, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s")
    return c.kubectl("-n", ns, "get", "pod", name, "-o", "jsonpath={.status.podIP}").strip()


def py_in(c: Cluster, ns: str, pod: str, code: str, check: bool = True) -> str:
    """Run Python inside the pod (the project's images have no shell tools; they have Python)."""
    return c.kubectl("-n", ns, "exec", pod, "--", "python", "-c", code, check=check)


def connect_code(host: str, port: int) -> str:
    """Python that prints `open` when a TCP connection to host:port succeeds, else `blocked ...`."""
    return (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), 3).close(); print('open')\n"
        "except OSError as e:\n"
        "    print('blocked', e)\n"
    )


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll `check` every second (policy and Service rules land within their agents' sync)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"{what} within {timeout}s")
