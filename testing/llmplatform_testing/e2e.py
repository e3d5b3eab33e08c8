"""Fixtures for tests against a real Kubernetes API server, shared by tests/e2e and
tests/security (the operator attacks of #12 run there): tests/conftest.py imports them.

Why: every e2e test talks to a real control plane, either the one built and started
here from the upstream Go modules (``tests/e2e/controlplane/``), or any cluster named by
``LLMPLATFORM_E2E_KUBECONFIG`` (a kind cluster on a laptop). The bed is started
once per session, stopped and cleaned up at the end (also on failure or Ctrl-C),
and its component logs are attached to the report of every failing test.

If the bed cannot start, the fixture raises and the tests *error*: e2e tests are
never silently skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from llmplatform_testing import ROOT
from llmplatform_testing.controlplane import Cluster, bed, build
from llmplatform_testing.operator_process import OperatorProcess

_RUNNING: dict[str, Any] = {}
"""The beds this session runs, by fixture name (`cluster`, `real_cluster`), for failure reports."""
_OPERATORS = OperatorProcess.running
"""Operators started and not yet closed; a failing test's report gets their logs."""


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    external = os.environ.get("LLMPLATFORM_E2E_KUBECONFIG")
    if external:
        yield Cluster(kubeconfig=Path(external), local=None)
        return
    bins = build.ensure_built()
    state = tmp_path_factory.mktemp("controlplane")
    cp = bed.ControlPlane(state=state, bin_dir=bins)
    with cp:
        _RUNNING["cluster"] = cp
        try:
            yield Cluster(kubeconfig=cp.kubeconfig, local=cp)
        finally:
            _RUNNING.pop("cluster", None)


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> None:
    """Install the CRDs from `crds/` (server-side apply, as a GitOps tool would) and wait until
    they are Established. Left installed: other clusters' CRDs are not ours to remove."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))


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
    outcome: Any = yield
    rep = outcome.get_result()
    if rep.failed:
        for name, running in _RUNNING.items():
            if name in getattr(item, "fixturenames", ()):  # the bed this test used
                rep.sections.append((f"{name} logs", running.logs_tail()))
    if rep.failed:
        for op in _OPERATORS:
            rep.sections.append((f"operator log {op.log_path.name}", op.log()[-8000:]))


@pytest.fixture()
def operator_env(cluster: Cluster, crds: None, tmp_path: Path) -> Iterator[Any]:
    """Fresh platform and tenant namespaces and a factory for operator processes watching them;
    everything is stopped and deleted afterwards."""
    suffix = uuid.uuid4().hex[:6]
    platform, tenant = f"plat-{suffix}", f"tenant-{suffix}"
    core = client.CoreV1Api(cluster.api())
    for ns in (platform, tenant):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    started: list[OperatorProcess] = []

    def make(start: bool = True) -> OperatorProcess:
        op = OperatorProcess(cluster, platform, [platform, tenant], tmp_path / f"operator-{len(started)}.log")
        started.append(op)
        return op.start() if start else op

    make.platform, make.tenant = platform, tenant  # type: ignore[attr-defined]
    yield make
    for op in started:
        op.close()
    for ns in (platform, tenant):
        core.delete_namespace(ns)


# --------------------------------------------------------------------------- real nodes


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The bed with one real node (``controlplane/realnodes.py``): pods really run.

    Part of every run (`make test` builds the node binaries and the images first; run alone,
    this fixture builds or reuses them through the same caches). A machine that cannot run it
    (not root, Debian packages missing) makes these tests *error* with the reason, never skip.
    The one skip: against another cluster (``LLMPLATFORM_E2E_KUBECONFIG``), whose nodes this
    bed's network namespace and containerd cannot reach. Its own session bed, separate from
    ``cluster``.
    """
    if os.environ.get("LLMPLATFORM_E2E_KUBECONFIG"):
        pytest.skip("real-node tests run on the bed's own node, not on LLMPLATFORM_E2E_KUBECONFIG's cluster")
    from llmplatform_testing.realnodes import images_build

    images_build().ensure_built()
    state = tmp_path_factory.mktemp("realnodes")
    rb = bed.make_bed(state, "real")
    with rb:
        _RUNNING["real_cluster"] = rb
        try:
            yield Cluster(kubeconfig=rb.kubeconfig, local=rb)
        finally:
            _RUNNING.pop("real_cluster", None)
