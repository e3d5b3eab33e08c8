"""The chart's pods on a real node: what only running containers can show.

- the operator and gateway pods start under the `restricted` Pod Security level with a
  read-only root file system (an image that writes to its root fails here, not for a user);
- the operator pod, with the chart's ServiceAccount, reconciles; killed, its container restarts
  and converges with zero writes;
- the gateway pod picks up a TenantQuota change through the kubelet's ConfigMap volume update,
  without a restart.

One release (watching only its own namespace, so it never meets the quickstart's release)
serves all three tests.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.metrics import metric_value
from llmplatform_testing.realnodes import bed_nodes as realnodes

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "llm-platform"


class Release:
    def __init__(self, c: Cluster, ns: str) -> None:
        self.c, self.ns = c, ns
        rb = c.local
        assert isinstance(rb, realnodes.RealNodeBed)
        self.rb = rb

    def helm(self, *args: str) -> str:
        import subprocess

        proc = subprocess.run(
            [self.rb._bin("helm"), f"--kubeconfig={self.c.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "HOME": str(self.rb.state)},
        )
        assert proc.returncode == 0, f"helm {args} failed: {proc.stderr}"
        return proc.stdout

    def k(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.c.kubectl("-n", self.ns, *args, input=input, check=check)

    def pod(self, component: str) -> dict[str, object]:
        pods = json.loads(
            self.k("get", "pods", "-l", f"app.kubernetes.io/component={component}", "-o", "json")
        )
        items = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
        assert len(items) == 1, [p["metadata"]["name"] for p in items]
        return items[0]  # type: ignore[no-any-return]

    def operator_metric(self, name: str) -> float:
        pod = self.pod("operator")["metadata"]["name"]  # type: ignore[index]
        text = self.c.kubectl("get", "--raw", f"/api/v1/namespaces/{self.ns}/pods/{pod}:8000/proxy/metrics")
        return metric_value(text, name)


@pytest.fixture(scope="module")
def release(real_cluster: Cluster) -> Iterator[Release]:
    ns = f"chart-{uuid.uuid4().hex[:6]}"
    real_cluster.kubectl("create", "namespace", ns)
    real_cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    rel = Release(real_cluster, ns)
    rel.helm(
        "install", "rn", str(CHART), "-n", ns,
        f"--set=operator.watchNamespaces={{{ns}}}",
        "--set=gateway.replicas=1",
        "--set=operator.resyncSeconds=15",
        "--wait", "--timeout=300s",
    )  # fmt: skip
    yield rel
    rel.helm("uninstall", "rn", "-n", ns, "--wait", "--timeout=120s")
    real_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _tenant(ns: str, rpm: int) -> str:
    model = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "LLMModel",
        "metadata": {"name": "m", "namespace": ns},
        "spec": {"tier": "standard", "provider": "openai", "contextWindow": 8192,
                 "endpoint": {"url": "http://upstream.invalid/v1"}},
    }  # fmt: skip
    policy = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {
            "default": True,
            "defaultTier": "standard",
            "tiers": [{"name": "standard", "models": ["m"]}],
        },
    }
    quota = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "TenantQuota",
        "metadata": {"name": "t", "namespace": ns},
        "spec": {"organization": "Test", "allowedTiers": ["standard"], "limits": {"requestsPerMinute": rpm},
                 "apiKeys": [{"name": "k", "user": "u", "role": "data_scientist"}]},
    }  # fmt: skip
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [model, policy, quota]})


def test_chart_pods_run_restricted_with_a_read_only_root(release: Release) -> None:
    for component in ("operator", "gateway"):
        pod = release.pod(component)
        status = pod["status"]  # type: ignore[index]
        assert all(cs["ready"] for cs in status["containerStatuses"]), status
        for container in pod["spec"]["containers"]:  # type: ignore[index]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The namespace's level is really enforced: a root pod is refused there.
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
           "spec": {"containers": [{"name": "c", "image": realnodes.PAUSE_IMAGE}]}}  # fmt: skip
    out = release.k("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert "root" not in release.k("get", "pods", "-o", "name"), out


def test_operator_pod_reconciles_and_restarts_with_zero_writes(release: Release) -> None:
    release.k("apply", "-f", "-", input=_tenant(release.ns, 1000))
    release.k(
        "wait", "--for=condition=Ready", "llmmodels,routingpolicies,tenantquotas", "--all", "--timeout=180s"
    )
    assert release.k("get", "secret", "t-k", "-o", "name").strip()  # the key the operator generated
    pod = release.pod("operator")
    cid = pod["status"]["containerStatuses"][0]["containerID"].split("//", 1)[1]  # type: ignore[index]
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]  # type: ignore[index]
    release.rb.ctr("tasks", "kill", "--signal", "SIGKILL", cid)
    deadline = time.monotonic() + 180
    while True:
        cs = release.pod("operator")["status"]["containerStatuses"][0]  # type: ignore[index]
        if cs["restartCount"] > restarts and cs["ready"]:
            break
        assert time.monotonic() < deadline, f"operator container did not come back: {cs}"
        time.sleep(1)
    deadline = time.monotonic() + 120
    while release.operator_metric("llmplatform_operator_passes_total") < 2:
        assert time.monotonic() < deadline, "the restarted operator made no two passes"
        time.sleep(1)
    assert release.operator_metric("llmplatform_operator_writes_total") == 0


def test_gateway_pod_picks_up_a_quota_change_through_the_configmap_volume(release: Release) -> None:
    release.k("apply", "-f", "-", input=_tenant(release.ns, 1000))
    release.k("wait", "--for=condition=Ready", "tenantquotas/t", "--timeout=180s")
    gw = release.pod("gateway")
    name = gw["metadata"]["name"]  # type: ignore[index]
    restarts = gw["status"]["containerStatuses"][0]["restartCount"]  # type: ignore[index]

    def served_hash() -> str:
        path = f"/api/v1/namespaces/{release.ns}/pods/{name}:8080/proxy/readyz"
        return str(json.loads(release.c.kubectl("get", "--raw", path))["config"])

    before = served_hash()
    release.k("apply", "-f", "-", input=_tenant(release.ns, 7))
    cm_hash = ""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        now = served_hash()
        if now != before:
            cm_hash = now
            break
        time.sleep(2)
    assert cm_hash, f"the gateway still serves the old config after 180s: {before}"
    assert release.pod("gateway")["status"]["containerStatuses"][0]["restartCount"] == restarts  # type: ignore[index]
