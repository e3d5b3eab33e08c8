"""The chart's default install (the operator watching every namespace, a ClusterRole) runs
the operator that reconciles examples/.

Why a module of its own: a cluster-wide operator sees every LLMplatform object in the bed, so
it must run when no other test's objects exist (tests/e2e/test_chart.py waits for its
namespaces to be gone), and never next to another operator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from llmplatform_testing.chart import (
    CHART,
    RESTRICTED,
    Release,
    assert_examples_reconciled,
    assert_never_refused,
    create_namespace,
    delete_namespaces,
    examples_for,
    helm,
    template,
    token_kubeconfig,
)
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import GROUP, VERSION, wait_for
from llmplatform_testing.operator_process import OperatorProcess


def foreign_objects(cluster: Cluster, own: set[str]) -> list[str]:
    custom = client.CustomObjectsApi(cluster.api())
    found = []
    for plural in ("llmmodels", "routingpolicies", "tenantquotas"):
        for item in custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
            if item["metadata"]["namespace"] not in own:
                found.append(f"{plural}/{item['metadata']['namespace']}/{item['metadata']['name']}")
    return found


@pytest.fixture()
def clusterwide(cluster: Cluster, crds: None, tmp_path: Path) -> Iterator[tuple[Release, OperatorProcess]]:
    suffix = uuid.uuid4().hex[:6]
    ns, tenants = f"chartcw-{suffix}", [f"chartcw-{suffix}-a", f"chartcw-{suffix}-b"]
    # objects of earlier tests whose namespaces are still being deleted would join the render
    wait_for(lambda: not foreign_objects(cluster, set()), 120, "no other test's LLMModel/policy/quota")
    core = client.CoreV1Api(cluster.api())
    create_namespace(core, ns, RESTRICTED)
    for t in tenants:
        create_namespace(core, t)
    op: OperatorProcess | None = None
    try:
        helm(
            "install",
            "cw",
            str(CHART),
            "-n",
            ns,
            "--wait",
            "--timeout",
            "120s",
            kubeconfig=cluster.kubeconfig,
        )
        release = Release(cluster, ns, tenants, template(ns, release="cw"))
        kubeconfig = token_kubeconfig(cluster, ns, release.operator_sa, tmp_path / "sa.kubeconfig")
        # no --namespace: the chart's default, every namespace
        op = OperatorProcess(Cluster(kubeconfig=kubeconfig, local=None), ns, [], tmp_path / "operator.log")
        op.start()
        cluster.kubectl("apply", "-f", "-", input=examples_for(release))
        yield release, op
    finally:
        if op is not None:
            op.close()
        helm("uninstall", "cw", "-n", ns, "--wait", kubeconfig=cluster.kubeconfig, check=False)
        delete_namespaces(core, [ns, *tenants])


def test_default_install_operator_reconciles_examples_across_namespaces(
    clusterwide: tuple[Release, OperatorProcess],
) -> None:
    release, op = clusterwide
    assert not any(a.startswith("--namespace") for a in op.proc.args)  # type: ignore[union-attr]
    assert_examples_reconciled(release.cluster, release.namespace, release.tenants)
    assert foreign_objects(release.cluster, {release.namespace, *release.tenants}) == []
    assert_never_refused(op)
