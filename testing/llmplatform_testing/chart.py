"""Helm chart helpers for the e2e tests: helm itself, rendering, a release, namespaces, a
ServiceAccount's kubeconfig, examples/ moved into a release's namespaces, and the checks that
examples/ were reconciled.

Why here: the chart tests and the cluster-wide install test both use them (they lived in
tests/e2e/test_chart.py, imported by another test module).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client

from llmplatform.contract.config import CONFIG_MAP_NAME
from llmplatform_testing import ROOT
from llmplatform_testing.controlplane import Cluster, build
from llmplatform_testing.kube import GROUP, VERSION, is_true, wait_for
from llmplatform_testing.operator_process import OperatorProcess

CHART = ROOT / "charts" / "llm-platform"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
RELEASE = "llmp"
"""The release name of the chart tests' own install."""


def helm_binary(cluster: Cluster | None = None) -> str:
    local = build.bin_dir() / "helm"
    if local.exists():
        return str(local)
    found = shutil.which("helm")
    if found is None:
        raise RuntimeError("no helm: run `make controlplane` (it builds helm) or put helm on PATH")
    return found


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": "/tmp/llmplatform-helm/cache"}
    env["HELM_CONFIG_HOME"] = "/tmp/llmplatform-helm/config"
    env["HELM_DATA_HOME"] = "/tmp/llmplatform-helm/data"
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template(namespace: str, *sets: str, release: str = RELEASE) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    out = helm(*args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, suffix: str = "") -> dict[str, Any]:
    found = [o for o in by_kind(objs, kind) if o["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"expected one {kind} *{suffix}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


@dataclass
class Release:
    cluster: Cluster
    namespace: str
    tenants: list[str]
    objects: list[dict[str, Any]]

    @property
    def operator_sa(self) -> str:
        return str(one(self.objects, "ServiceAccount", "-operator")["metadata"]["name"])


def delete_namespaces(core: client.CoreV1Api, names: list[str], timeout: float = 120) -> None:
    """Delete and wait until they are gone, so no later test (or cluster-wide operator) sees
    their objects."""
    for name in names:
        core.delete_namespace(name)

    def gone() -> bool:
        return not [n for n in core.list_namespace().items if n.metadata and n.metadata.name in names]

    wait_for(gone, timeout, f"namespaces {names} deleted")


def create_namespace(core: client.CoreV1Api, name: str, labels: dict[str, str] | None = None) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))


def token_kubeconfig(cluster: Cluster, namespace: str, sa: str, path: Path) -> Path:
    """A kubeconfig for the bed's API server that authenticates as the ServiceAccount."""
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=1h").strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bed", "cluster": server}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": "bed", "user": sa, "namespace": namespace}}],
        "current-context": sa,
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


NAMESPACE_MAP_KEYS = ("llm-platform", "team-a", "team-b")


def examples_for(release: Release) -> str:
    """examples/ with their namespaces moved to the release's (Namespace objects dropped)."""
    mapping = dict(zip(NAMESPACE_MAP_KEYS, [release.namespace, *release.tenants], strict=True))

    def move(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (mapping.get(v, v) if k == "namespace" and isinstance(v, str) else move(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [move(v) for v in node]
        return node

    docs = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] != "Namespace":
                docs.append(move(doc))
    return yaml.safe_dump_all(docs)


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def assert_examples_reconciled(cluster: Cluster, ns: str, tenants: list[str]) -> None:
    """examples/ (moved to `ns` and `tenants`) reconciled: models, children, the ConfigMap,
    policy status, quotas Approved with generated keys, the leader Lease, Events."""
    api = cluster.api()
    custom, core, apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)
    team_a, team_b = tenants

    def get(plural: str, namespace: str, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        )

    def holds(plural: str, namespace: str, name: str, ctype: str) -> bool:
        return is_true(conditions(get(plural, namespace, name)).get(ctype))

    for name in ("claude-sonnet", "gpt-4o-mini"):
        wait_for(partial(holds, "llmmodels", ns, name, "Ready"), 60, f"{name} Ready")
    # the self-hosted model: its children are rendered (apply needed create+patch)
    wait_for(partial(apps.read_namespaced_deployment, "llmm-llama-3-8b", ns), 60, "the llama Deployment")
    wait_for(partial(core.read_namespaced_service, "llmm-llama-3-8b", ns), 60, "the llama Service")
    client.NetworkingV1Api(api).read_namespaced_network_policy("llmm-llama-3-8b", ns)
    cm = wait_for(lambda: core.read_namespaced_config_map(CONFIG_MAP_NAME, ns), 60, "gateway ConfigMap")
    assert cm.data or cm.binary_data
    wait_for(lambda: conditions(get("routingpolicies", ns, "default")).get("Ready"), 60, "policy status")
    for tenant, name in ((team_a, "team-a"), (team_b, "team-b")):
        wait_for(partial(holds, "tenantquotas", tenant, name, "Approved"), 60, f"{name} Approved")
    for key in ("team-a-alice", "team-a-ci"):
        data = core.read_namespaced_secret(key, team_a).data
        assert data is not None and base64.b64decode(data["api-key"]).startswith(b"llmp-")
    lease = client.CoordinationV1Api(api).read_namespaced_lease("llmplatform-operator", ns)
    assert lease.spec is not None and lease.spec.holder_identity
    events = core.list_namespaced_event(team_a, field_selector="involvedObject.kind=TenantQuota").items
    assert events, "the operator posted no Event (events: create)"


def assert_never_refused(op: OperatorProcess) -> None:
    forbidden = [line for line in op.log().splitlines() if "forbidden" in line.lower()]
    assert not forbidden, "operator was refused an API call:\n" + "\n".join(forbidden[:20])
