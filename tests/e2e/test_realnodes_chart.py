"""The chart's pods on a real node: what only running containers can show.

- the operator and gateway pods start under the `restricted` Pod Security level with a
  read-only root file system (an image that writes to its root fails here, not for a user);
- the operator pod, with the chart's ServiceAccount, reconciles; killed, its container restarts
  and converges with zero writes;
- the gateway pod picks up a TenantQuota change through the kubelet's ConfigMap volume update,
  without a restart;
- a self-hosted LLMModel's rendered Deployment runs the mock-upstream image (the chart's
  values-no-gpu.yaml), becomes Ready through its probe, and the gateway routes through its
  Service; the chart's and the operator's NetworkPolicies are enforced (kube-router): only
  labelled namespaces reach the gateway, only gateway pods reach a model's pods, and the
  gateway's egress goes nowhere else;
- a `helm upgrade` of the gateway's image tag under steady load from the openai client fails no
  request, and the old pod's audit chain verifies.

One release (watching its own namespace and one for tenants, never the quickstart's) serves
every test; the upgrade comes last.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from llmplatform.contract.config import CONFIG_MAP_NAME
from llmplatform.contract.names import CONFIG_HASH_ANNOTATION
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.metrics import metric_value
from llmplatform_testing.realnodes import bed_nodes as realnodes
from llmplatform_testing.realnodes import connect_code, eventually, image_name, py_in, run_pod

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "llm-platform"


class Release:
    """The chart installed in `ns` (restricted Pod Security: the chart's own pods), watching
    also `tenants`, where `_tenant` puts the models, the policy and the quota: a self-hosted
    model's server runs as its image wants, so its namespace enforces `baseline`, not
    `restricted` (docs/operations.md)."""

    def __init__(self, c: Cluster, ns: str) -> None:
        self.c, self.ns, self.tenants = c, ns, f"{ns}-t"
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

    def t(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """kubectl in the tenants' namespace."""
        return self.c.kubectl("-n", self.tenants, *args, input=input, check=check)

    def tenant_ready(self, rpm: int) -> None:
        """Apply `_tenant` (its requests-per-minute limit `rpm`) and wait until all is Ready."""
        self.t("apply", "-f", "-", input=_tenant(self.tenants, rpm))
        self.t(
            "wait",
            "--for=condition=Ready",
            "llmmodels,routingpolicies,tenantquotas",
            "--all",
            "--timeout=110s",
        )

    def gateway_serves_the_current_config(self, timeout: float = 240) -> None:
        """Wait until the gateway pod serves the config the operator last wrote (its /readyz
        hash equals the ConfigMap's annotation): a TenantQuota is Ready as soon as the operator
        wrote the ConfigMap, but the kubelet delivers it to the pod's volume up to its sync
        period later, and a test that measures failures must not count that lag."""
        name = self.pod("gateway")["metadata"]["name"]  # type: ignore[index]
        path = f"/api/v1/namespaces/{self.ns}/pods/{name}:8080/proxy/readyz"
        jsonpath = "{.metadata.annotations." + CONFIG_HASH_ANNOTATION.replace(".", "\\.") + "}"

        def in_sync() -> bool:
            written = self.k("get", "configmap", CONFIG_MAP_NAME, "-o", f"jsonpath={jsonpath}").strip()
            served = json.loads(self.c.kubectl("get", "--raw", path))["config"]
            return bool(written) and served == written

        eventually(in_sync, "the gateway pod to serve the operator's latest config", timeout)

    def key(self) -> str:
        """The API key the operator generated for `_tenant`'s quota."""
        return base64.b64decode(self.t("get", "secret", "t-k", "-o", "jsonpath={.data.api-key}")).decode()

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
    real_cluster.kubectl("create", "namespace", rel.tenants)
    real_cluster.kubectl("label", "namespace", rel.tenants, "pod-security.kubernetes.io/enforce=baseline")
    rel.helm(
        "install", "rn", str(CHART), "-n", ns,
        f"--set=operator.watchNamespaces={{{ns},{rel.tenants}}}",
        "--set=gateway.replicas=1",
        f"--values={CHART / 'values-no-gpu.yaml'}",
        "--set=operator.resyncSeconds=15",
        "--wait", "--timeout=300s",
    )  # fmt: skip
    yield rel
    rel.helm("uninstall", "rn", "-n", ns, "--wait", "--timeout=120s")
    for name in (ns, rel.tenants):
        real_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _tenant(ns: str, rpm: int) -> str:
    model = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "LLMModel",
        "metadata": {"name": "m", "namespace": ns},
        "spec": {"tier": "standard", "provider": "openai", "contextWindow": 8192,
                 "endpoint": {"url": "http://upstream.invalid/v1"}},
    }  # fmt: skip
    # Self-hosted: the chart's servingOverrides (values-no-gpu.yaml) run the mock upstream image.
    local = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "LLMModel",
        "metadata": {"name": "local", "namespace": ns},
        "spec": {"tier": "efficient", "contextWindow": 8192,
                 "serving": {"image": "vllm/vllm-openai:v0.6.3", "port": 8000, "readinessPath": "/health"}},
    }  # fmt: skip
    policy = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": "default", "namespace": ns},
        "spec": {
            "default": True,
            "defaultTier": "standard",
            "tiers": [{"name": "standard", "models": ["m"]}, {"name": "efficient", "models": ["local"]}],
        },
    }
    quota = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "TenantQuota",
        "metadata": {"name": "t", "namespace": ns},
        "spec": {"organization": "Test", "allowedTiers": ["standard", "efficient"],
                 "limits": {"requestsPerMinute": rpm},
                 "apiKeys": [{"name": "k", "user": "u", "role": "data_scientist"}]},
    }  # fmt: skip
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [model, local, policy, quota]})


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
    # No other release's operator may watch this namespace: two operators rewrite each other's
    # statuses without end (test_quickstart removes its cluster-wide release for that reason).
    def operators() -> set[str]:
        return set(
            release.c.kubectl(
                "get", "pods", "-A", "-l", "app.kubernetes.io/name=llmplatform-operator",
                "-o", "jsonpath={range .items[*]}{.metadata.namespace}{' '}{end}",
            ).split()
        )  # fmt: skip

    eventually(lambda: operators() == {release.ns}, "no other release's operator running", 120)
    release.tenant_ready(1000)
    assert release.t("get", "secret", "t-k", "-o", "name").strip()  # the key the operator generated
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
    writes = release.operator_metric("llmplatform_operator_writes_total")
    log = release.k("logs", release.pod("operator")["metadata"]["name"], "--tail=60")  # type: ignore[index]
    assert writes == 0, f"{writes} writes after the restart; the operator's log:\n{log}"


@contextmanager
def steady_load(release: Release, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The official openai client sending without pause to the gateway Service (from inside the
    bed's network namespace) for as long as the block runs; the dict is filled on exit with
    `ok` (answered) and `failures` (each with its time and message)."""
    release.gateway_serves_the_current_config()  # no request may meet a quota the pod has not seen
    key = release.key()
    ip = release.k("get", "service", "rn-llm-platform-gateway", "-o", "jsonpath={.spec.clusterIP}").strip()
    stop = tmp_path / "stop-load"
    load = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmplatform_testing.steadyload",
            f"http://{ip}:80/v1",
            key,
            "efficient",
            str(stop),
        ],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: realnodes.enter_netns(release.rb.netns),
    )
    result: dict[str, Any] = {}
    try:
        time.sleep(5)  # steady before the change
        yield result
        time.sleep(5)  # and steady after it
    finally:
        stop.touch()
        out_text, _ = load.communicate(timeout=120)
    result.update(json.loads(out_text))


def test_gateway_pod_picks_up_a_quota_change_through_the_configmap_volume(
    release: Release, tmp_path: Path
) -> None:
    """A TenantQuota edit reaches the running gateway pod through the kubelet's ConfigMap
    volume update (the `..data` swap): no restart, and no request fails meanwhile (the
    tenant's limit stays far above the load, so only the config changes)."""
    release.tenant_ready(100000)
    gw = release.pod("gateway")
    name = gw["metadata"]["name"]  # type: ignore[index]
    restarts = gw["status"]["containerStatuses"][0]["restartCount"]  # type: ignore[index]

    def served_hash() -> str:
        path = f"/api/v1/namespaces/{release.ns}/pods/{name}:8080/proxy/readyz"
        return str(json.loads(release.c.kubectl("get", "--raw", path))["config"])

    cm_hash = ""
    with steady_load(release, tmp_path) as result:
        before = served_hash()
        release.t("apply", "-f", "-", input=_tenant(release.tenants, 200000))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            now = served_hash()
            if now != before:
                cm_hash = now
                break
            time.sleep(2)
    assert cm_hash, f"the gateway still serves the old config after 180s: {before}"
    assert release.pod("gateway")["status"]["containerStatuses"][0]["restartCount"] == restarts  # type: ignore[index]
    assert result["ok"] > 20, result
    assert result["failures"] == [], f"{len(result['failures'])} failed of {result['ok']} answered: {result}"
    print(f"quota change through the ConfigMap volume under load: {result}")


def _chat_code(url: str, key: str, model: str) -> str:
    """Python for inside a pod: one chat completion; prints the status, the serving model and
    the reply's fingerprint (the mock upstream names itself a TEST SERVER there)."""
    return (
        "import json, urllib.request, urllib.error\n"
        f"body = {{'model': {model!r}, 'messages': [{{'role': 'user', 'content': 'hi'}}]}}\n"
        f"req = urllib.request.Request({url!r} + '/v1/chat/completions', method='POST',\n"
        "    data=json.dumps(body).encode(),\n"
        f"    headers={{'Authorization': 'Bearer ' + {key!r}, 'Content-Type': 'application/json'}})\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=10)\n"
        "    print(r.status, r.headers.get('x-llmplatform-model'), json.load(r).get('system_fingerprint'))\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.read()[:200])\n"
        "except OSError as e:\n"
        "    print('blocked', e)\n"
    )


def test_self_hosted_model_and_network_policies_on_real_pods(release: Release) -> None:
    c, ns = release.c, release.ns
    release.tenant_ready(1000)

    # The self-hosted model: its rendered Deployment runs the mock upstream image (the chart's
    # servingOverrides), with the readiness probe on its readinessPath, and is available.
    dep = json.loads(release.t("get", "deployment", "llmm-local", "-o", "json"))
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image_name("mock-upstream"), container["image"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert dep["status"].get("availableReplicas", 0) >= 1, dep["status"]
    model_pod = json.loads(release.t("get", "pods", "-l", "llmplatform.io/model=local", "-o", "json"))[
        "items"
    ][0]
    model_ip = model_pod["status"]["podIP"]
    gateway = release.pod("gateway")["metadata"]["name"]  # type: ignore[index]
    key = release.key()
    gateway_url = f"http://rn-llm-platform-gateway.{ns}.svc.cluster.local:80"

    # Client namespaces: one labelled as the chart's README says, one not.
    inside, outside = f"{ns}-in", f"{ns}-out"
    for name, labels in ((inside, ["llmplatform.io/gateway-client=true"]), (outside, [])):
        c.kubectl("create", "namespace", name)
        c.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted", *labels)
    try:
        run_pod(c, inside, "client")
        outside_ip = run_pod(c, outside, "client")
        run_pod(c, ns, "stray")  # in the platform namespace, but not a gateway pod

        # A labelled namespace reaches the gateway, and the gateway routes the efficient tier
        # to the self-hosted model through its Service: the answer comes from the model's pod.
        def chat_served() -> bool:
            out = py_in(c, inside, "client", _chat_code(gateway_url, key, "efficient"))
            return out.startswith("200 ") and out.split()[1].endswith("local") and "TEST SERVER" in out

        eventually(chat_served, "a chat from a labelled namespace served by the self-hosted model", 180)

        # Ingress to the gateway: an unlabelled namespace is blocked (the same request).
        out = py_in(c, outside, "client", _chat_code(gateway_url, key, "efficient"))
        assert out.startswith("blocked"), f"an unlabelled namespace reached the gateway: {out}"

        # The model's pods admit only gateway pods: a labelled client and a non-gateway pod
        # of the platform namespace are blocked; the gateway itself connects (and served above).
        for where, pod in ((inside, "client"), (ns, "stray")):
            out = py_in(c, where, pod, connect_code(model_ip, 8000))
            assert out.startswith("blocked"), f"{where}/{pod} reached the model pod: {out}"
        assert py_in(c, ns, gateway, connect_code(model_ip, 8000)).startswith("open")

        # The gateway's egress: to model pods, DNS and 443 only. A plain pod on 8000 that other
        # pods do reach (no policy guards the unlabelled namespace) is blocked for the gateway.
        assert py_in(c, inside, "client", connect_code(outside_ip, 8000)).startswith("open")
        out = py_in(c, ns, gateway, connect_code(outside_ip, 8000))
        assert out.startswith("blocked"), f"the gateway's egress reached a non-model pod: {out}"
    finally:
        release.k("delete", "pod", "stray", "--wait=false", check=False)
        for name in (inside, outside):
            c.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_helm_upgrade_of_the_gateway_image_under_load_fails_no_request(
    release: Release, tmp_path: Path
) -> None:
    """A `helm upgrade` that changes the gateway's image tag while the openai client keeps
    sending: every request answered (readiness, maxUnavailable 0, the pod's drain on SIGTERM),
    and the audit chain the old pod wrote verifies with `llmplatform audit verify`."""
    c, ns, rb = release.c, release.ns, release.rb
    release.tenant_ready(100000)
    # The "new version": the same image under another tag, as a release pipeline would push it.
    old_image = image_name("gateway")
    new_tag = old_image.rsplit(":", 1)[1] + "-upgrade"
    rb.ctr("images", "tag", "--force", old_image, f"{old_image.rsplit(':', 1)[0]}:{new_tag}")
    old_pod = str(release.pod("gateway")["metadata"]["name"])  # type: ignore[index]
    # The old pod's stdout (its audit records) until its container exits.
    old_log = tmp_path / "old-pod.log"
    with old_log.open("w") as out:
        follow = subprocess.Popen(
            [rb._bin("kubectl"), f"--kubeconfig={c.kubeconfig}", "-n", ns, "logs", "-f", old_pod],
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
    try:
        with steady_load(release, tmp_path) as result:
            release.helm(
                "upgrade", "rn", str(CHART), "-n", ns, "--reuse-values",
                f"--set=gateway.image.tag={new_tag}", "--wait", "--timeout=300s",
            )  # fmt: skip
            eventually(lambda: follow.poll() is not None, "the old gateway pod's container to exit", 120)
    finally:
        if follow.poll() is None:
            follow.terminate()
    new = release.pod("gateway")
    assert new["spec"]["containers"][0]["image"].endswith(f":{new_tag}")  # type: ignore[index]
    assert result["ok"] > 20, result
    assert result["failures"] == [], f"{len(result['failures'])} failed of {result['ok']} answered: {result}"
    # The old pod's audit chain: its stdout, without the log lines kubectl interleaves from its
    # stderr (the gateway's JSON log format always names its "logger"; records never do).
    lines = [line for line in old_log.read_text().splitlines() if line.startswith("{")]
    records = [line for line in lines if "logger" not in json.loads(line)]
    assert records, old_log.read_text()[-2000:]
    assert json.loads(records[-1])["kind"] == "close", records[-1]  # closed cleanly on SIGTERM
    print(f"helm upgrade under load: {result}; the old pod's chain: {len(records)} records")
    audit = tmp_path / "old-pod-audit.jsonl"
    audit.write_text("\n".join(records) + "\n")
    verify = subprocess.run(
        [sys.executable, "-m", "llmplatform.cli", "audit", "verify", str(audit)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
