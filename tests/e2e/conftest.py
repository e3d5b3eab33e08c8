"""Session fixtures for end-to-end tests against a real Kubernetes API server.

Why: every e2e test talks to a real control plane, either the one built and started
here from the upstream Go modules (``controlplane/``), or any cluster named by
``LLMPLATFORM_E2E_KUBECONFIG`` (a kind cluster on a laptop). The bed is started
once per session, stopped and cleaned up at the end (also on failure or Ctrl-C),
and its component logs are attached to the report of every failing test.

If the bed cannot start, the fixture raises and the tests *error*: e2e tests are
never silently skipped.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent / "controlplane"))
import bed  # noqa: E402
import build  # noqa: E402

_RUNNING: bed.ControlPlane | None = None


@dataclass
class Cluster:
    """What a test gets: a kubeconfig, API clients, and the local bed when there is one."""

    kubeconfig: Path
    local: bed.ControlPlane | None

    def api(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        if self.local is None:
            import subprocess

            proc = subprocess.run(
                ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
                input=input,
                text=True,
                capture_output=True,
                timeout=120,
            )
            if check and proc.returncode != 0:
                raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
            return proc.stdout
        return self.local.kubectl(*args, input=input, check=check)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    global _RUNNING
    external = os.environ.get("LLMPLATFORM_E2E_KUBECONFIG")
    if external:
        yield Cluster(kubeconfig=Path(external), local=None)
        return
    bins = build.ensure_built()
    state = tmp_path_factory.mktemp("controlplane")
    cp = bed.ControlPlane(state=state, bin_dir=bins)
    with cp:
        _RUNNING = cp
        try:
            yield Cluster(kubeconfig=cp.kubeconfig, local=cp)
        finally:
            _RUNNING = None


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> None:
    """Install the CRDs from `crds/` (server-side apply, as a GitOps tool would) and wait until
    they are Established. Left installed: other clusters' CRDs are not ours to remove."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds")
    )


@pytest.fixture()
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (objects in it are garbage)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(cluster.api())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _RUNNING is not None:
        rep.sections.append(("control-plane logs", _RUNNING.logs_tail()))
