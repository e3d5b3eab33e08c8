"""Argo CD readiness against the real control plane: health checks and no drift.

Argo CD itself cannot run here, so this proves the two things it would rely on:
- the Lua health checks it would run (deploy/argocd/argocd-cm-health.yaml, run in Lua 5.1 by
  lupa) give the right verdict on statuses the operator really wrote, including the
  in-between states (no status yet, a spec edit the operator has not observed, a Deployment
  with no available replicas);
- after the operator has reconciled examples/, applying the same manifests again would change
  nothing: `kubectl diff` (server-side, as Argo CD's ServerSideApply=true does, and the
  client-side variant) exits 0 with no output, so the Application stays Synced with no
  `ignoreDifferences`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmplatform_testing import ROOT, scripts
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import Api, model, policy, quota, wait_for
from llmplatform_testing.operator_process import OperatorProcess
from llmplatform_testing.readme import quickstart_command

health = scripts.argocd_health()

EXAMPLES = ROOT / "examples"
EXAMPLE_NAMESPACES = ("llm-platform", "team-a", "team-b")
CEILINGS = {"requestsPerMinute": 600, "tokensPerDay": 1_000_000}


def verdict(api: Api, kind: str, ns: str, name: str) -> dict[str, str]:
    """The Argo CD health of the live object, from the installed Lua."""
    return health.evaluate(f"llmplatform.io_{kind}", api.get(kind, ns, name))


def reason(api: Api, kind: str, ns: str, name: str, ctype: str = "Ready") -> str | None:
    cond = api.condition(kind, ns, name, ctype)
    return cond["reason"] if cond else None


def settle(
    api: Api, kind: str, ns: str, name: str, expected: str, why: str, timeout: float = 60
) -> dict[str, str]:
    """Wait until the live object's status is current and carries reason `why`, then return
    its verdict, which must be `expected`."""

    def current() -> bool:
        body = api.get(kind, ns, name)
        status = body.get("status") or {}
        reasons = {c["reason"] for c in status.get("conditions") or []}
        return status.get("observedGeneration") == body["metadata"]["generation"] and why in reasons

    wait_for(current, timeout, f"{kind} {ns}/{name} to report {why}")
    v = verdict(api, kind, ns, name)
    assert v["status"] == expected, (kind, name, v)
    assert why in v["message"], v
    return v


def test_health_of_statuses_the_operator_wrote(cluster: Cluster, operator_env: Any) -> None:
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    ceilings = {"tenantCeilings": CEILINGS}
    api.create(model("steady", p))
    locked = model("locked", p)
    locked["spec"]["endpoint"]["apiKeySecretRef"] = {"name": "no-such-secret", "key": "api-key"}
    api.create(locked)
    waiting = model("waiting", p, serving=True, tier="efficient")
    waiting["spec"]["serving"]["nodeSelector"] = {"llmplatform.test/no-such-node": "true"}
    api.create(waiting)
    api.create(policy("main", p, {"standard": ["steady"], "efficient": ["waiting"]}, **ceilings))
    api.create(policy("dangling", p, {"standard": ["steady", "ghost"]}, default=False))
    keys = [{"name": "app", "user": "app", "role": "business_user"}]
    api.create(quota("fits", t, limits={"requestsPerMinute": 100}, apiKeys=keys))
    api.create(quota("greedy", t, limits={"requestsPerMinute": 10_000}))

    # Before any operator has run, nothing has a status: all Progressing, none Healthy.
    objects = [
        ("LLMModel", p, "steady"),
        ("LLMModel", p, "locked"),
        ("LLMModel", p, "waiting"),
        ("RoutingPolicy", p, "main"),
        ("RoutingPolicy", p, "dangling"),
        ("TenantQuota", t, "fits"),
        ("TenantQuota", t, "greedy"),
    ]
    for kind, ns, name in objects:
        assert "status" not in api.get(kind, ns, name)
        assert verdict(api, kind, ns, name)["status"] == "Progressing", name

    op = operator_env()
    settle(api, "LLMModel", p, "steady", "Healthy", "Configured")
    settle(api, "LLMModel", p, "locked", "Degraded", "SecretNotFound")
    settle(api, "LLMModel", p, "waiting", "Progressing", "DeploymentUnavailable")
    settle(api, "RoutingPolicy", p, "main", "Healthy", "AllModelsReady")
    v = settle(api, "RoutingPolicy", p, "dangling", "Degraded", "MissingModels")
    assert "ghost" in v["message"]
    settle(api, "TenantQuota", t, "fits", "Healthy", "Configured")
    v = settle(api, "TenantQuota", t, "greedy", "Degraded", "ExceedsCeiling")
    assert "requestsPerMinute" in v["message"], v

    # A fresh edit the operator has not observed: the old (Healthy) verdict must not stand.
    op.stop()
    api.patch("LLMModel", p, "steady", {"spec": {"contextWindow": 4096}})
    api.patch("TenantQuota", t, "fits", {"spec": {"limits": {"requestsPerMinute": 5000}}})
    for kind, ns, name in (("LLMModel", p, "steady"), ("TenantQuota", t, "fits")):
        v = verdict(api, kind, ns, name)
        assert v["status"] == "Progressing", v
        assert "generation 2 (status describes 1)" in v["message"], v
        assert reason(api, kind, ns, name) == "Configured"  # what the stale status still says

    # The next operator observes them: the model is Healthy again; the quota's new request is
    # over the ceiling while its earlier grant stays in force: Degraded, and it says so.
    operator_env()
    settle(api, "LLMModel", p, "steady", "Healthy", "Configured")
    v = settle(api, "TenantQuota", t, "fits", "Degraded", "PreviousGrantInForce")
    assert v["message"].startswith("Approved=False ExceedsCeiling"), v

    # The missing model arrives: the dangling policy heals.
    api.create(model("ghost", p))
    settle(api, "RoutingPolicy", p, "dangling", "Healthy", "AllModelsReady")


# --------------------------------------------------------------------------- no drift on examples/


def kubectl_rc(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl with its exit code (kubectl diff: 0 no differences, 1 differences, >1 error)."""
    binary = str(cluster.local.bin_dir / "kubectl") if cluster.local else "kubectl"
    return subprocess.run(
        [binary, f"--kubeconfig={cluster.kubeconfig}", *args], capture_output=True, text=True, timeout=120
    )


def delete_example_namespaces(cluster: Cluster) -> None:
    core = client.CoreV1Api(cluster.api())
    for ns in EXAMPLE_NAMESPACES:
        try:
            core.delete_namespace(ns)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def gone() -> bool:
        names = {n.metadata.name for n in core.list_namespace().items}
        return not names & set(EXAMPLE_NAMESPACES)

    wait_for(gone, 120, "the example namespaces to be deleted")


@pytest.fixture()
def examples_operator(cluster: Cluster, crds: None, tmp_path: Path) -> Iterator[OperatorProcess]:
    """examples/ use fixed namespaces: start from none of them, run an operator watching
    them, and delete them again afterwards."""
    delete_example_namespaces(cluster)
    op = OperatorProcess(cluster, "llm-platform", list(EXAMPLE_NAMESPACES), tmp_path / "operator.log")
    yield op
    op.close()
    delete_example_namespaces(cluster)


def quiet(op: OperatorProcess, seconds: float = 3.0) -> None:
    """Wait until the operator has made no API write for `seconds`: whatever it would still
    write (to its children or the users' objects) has been written before we diff."""
    last, since = -1.0, time.monotonic()
    deadline = since + 60
    while time.monotonic() < deadline:
        writes = op.metric("llmplatform_operator_writes_total")
        if writes != last:
            last, since = writes, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.25)
    raise AssertionError("the operator kept writing for 60 s")


# How Argo CD applies with syncOptions ServerSideApply=true (its field manager), and without.
APPLY = {
    "server-side": ["apply", "--server-side", "--field-manager=argocd-controller"],
    "client-side": ["apply"],
}
DIFF = {
    "server-side": ["diff", "--server-side", "--field-manager=argocd-controller"],
    "client-side": ["diff"],
}


@pytest.mark.parametrize("mode", sorted(APPLY))
def test_examples_become_healthy_and_show_no_drift(
    cluster: Cluster, examples_operator: OperatorProcess, mode: str, tmp_path: Path
) -> None:
    api = Api(cluster)
    # Namespaces first, as Argo CD's sync would create them before the namespaced objects.
    cluster.kubectl(*APPLY[mode], "-f", str(EXAMPLES / "00-namespaces.yaml"))
    cluster.kubectl(*APPLY[mode], "-f", str(EXAMPLES))
    examples_operator.start()

    expected = [
        ("LLMModel", "llm-platform", "claude-sonnet", "Configured"),
        ("LLMModel", "llm-platform", "gpt-4o-mini", "Configured"),
        ("LLMModel", "llm-platform", "llama-3-8b", "DeploymentAvailable"),  # kwok runs its pod
        ("RoutingPolicy", "llm-platform", "default", "AllModelsReady"),
        ("TenantQuota", "team-a", "team-a", "Configured"),
        ("TenantQuota", "team-b", "team-b", "Configured"),
    ]
    for kind, ns, name, why in expected:
        settle(api, kind, ns, name, "Healthy", why, timeout=120)
    # The operator's own objects exist: generated key Secrets, the model server, the config.
    for ns, secret in (("team-a", "team-a-alice"), ("team-a", "team-a-ci")):
        assert api.core.read_namespaced_secret(secret, ns).data["api-key"]
    assert api.apps.read_namespaced_deployment("llmm-llama-3-8b", "llm-platform")
    assert api.config("llm-platform")["models"]
    quiet(examples_operator)

    # The same variant as the apply: a client-side diff of server-side applied objects would
    # always propose kubectl's last-applied annotation, which Argo CD never compares.
    proc = kubectl_rc(cluster, *DIFF[mode], "-f", str(EXAMPLES))
    assert (proc.returncode, proc.stdout) == (0, ""), f"{mode} diff:\n{proc.stdout}\n{proc.stderr}"

    # The same diff does see a change to the manifests (so an empty diff means something).
    edited = tmp_path / "20-models.yaml"
    edited.write_text(
        (EXAMPLES / "20-models.yaml").read_text().replace("contextWindow: 128000", "contextWindow: 64000")
    )
    proc = kubectl_rc(cluster, *DIFF[mode], "-f", str(edited))
    assert proc.returncode == 1, proc.stderr
    assert "-  contextWindow: 128000" in proc.stdout and "+  contextWindow: 64000" in proc.stdout, proc.stdout


def test_examples_apply_after_helm_created_the_namespace_without_warning(
    cluster: Cluster, crds: None
) -> None:
    """#16.7: `helm install --create-namespace` creates `llm-platform` without kubectl's
    last-applied annotation; client-side `kubectl apply -f examples/` then warns about it (the
    trigger, checked here), and the README quickstart's own apply command (read from README.md:
    `kubectl apply --server-side -f examples/`) prints no warning at all."""
    delete_example_namespaces(cluster)
    try:
        cluster.kubectl("create", "namespace", "llm-platform")  # as helm does: no annotation
        kubectl, *args = quickstart_command("kubectl apply")
        assert kubectl == "kubectl" and "--server-side" in args
        readme = kubectl_rc(cluster, *args)
        assert readme.returncode == 0, readme.stderr
        assert "warning" not in readme.stderr.lower(), readme.stderr
        assert "namespace/llm-platform serverside-applied" in readme.stdout
        csa = kubectl_rc(cluster, "apply", "-f", str(EXAMPLES / "00-namespaces.yaml"))
        assert "missing the kubectl.kubernetes.io/last-applied-configuration annotation" in csa.stderr
    finally:
        delete_example_namespaces(cluster)
