"""Proof that the test bed is a real Kubernetes control plane.

Each test exercises one behaviour the operator relies on and that a fake API server
would not have: CEL validation, owner-reference garbage collection, scheduling and
pod readiness (through kwok), RBAC denial, and watches that survive an API server
restart.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from llmplatform_testing.controlplane import Cluster, build
from llmplatform_testing.kube import wait_for


def test_version_is_the_pinned_release(cluster: Cluster) -> None:
    info = client.VersionApi(cluster.api()).get_code()
    if cluster.local is not None:
        assert info.git_version == build.KUBERNETES_VERSION
    assert info.major == "1"


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.bed.llmplatform.io"},
    "spec": {
        "group": "bed.llmplatform.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "min": {"type": "integer"},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": "spec.min must not exceed spec.max",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_cel_rule_rejects_violating_object(cluster: Cluster, namespace: str) -> None:
    api = cluster.api()
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise

    def established() -> bool:
        crd = ext.read_custom_resource_definition("widgets.bed.llmplatform.io")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, 30, "the Widget CRD to be established")
    co = client.CustomObjectsApi(api)

    def widget(name: str, lo: int, hi: int) -> dict[str, Any]:
        return {
            "apiVersion": "bed.llmplatform.io/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": {"min": lo, "max": hi},
        }

    # The discovery cache of a fresh CRD can lag; the valid create proves it is served.
    wait_for(
        lambda: _try(
            lambda: co.create_namespaced_custom_object(
                "bed.llmplatform.io", "v1", namespace, "widgets", widget("ok", 1, 2)
            )
        ),
        30,
        "a valid Widget to be accepted",
    )
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object(
            "bed.llmplatform.io", "v1", namespace, "widgets", widget("bad", 5, 2)
        )
    assert err.value.status == 422
    assert "spec.min must not exceed spec.max" in err.value.body


def _try(fn: Callable[[], Any]) -> bool:
    try:
        fn()
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _deployment(
    name: str, replicas: int, owner: client.V1OwnerReference | None = None
) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, owner_references=[owner] if owner else None),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="registry.example/fake:1")],
                    # kwok's fake nodes carry this taint in some setups; tolerate it either way.
                    tolerations=[
                        client.V1Toleration(key="kwok.x-k8s.io/node", operator="Exists", effect="NoSchedule")
                    ],
                ),
            ),
        ),
    )


def test_owned_deployment_is_garbage_collected(cluster: Cluster, namespace: str) -> None:
    api = cluster.api()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"a": "b"})
    )
    ref = client.V1OwnerReference(
        api_version="v1",
        kind="ConfigMap",
        name="owner",
        uid=owner.metadata.uid,
        block_owner_deletion=True,
        controller=True,
    )
    apps.create_namespaced_deployment(namespace, _deployment("owned", 1, ref))
    assert apps.read_namespaced_deployment("owned", namespace).metadata.uid
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def gone() -> bool:
        try:
            apps.read_namespaced_deployment("owned", namespace)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(gone, 60, "the garbage collector to delete the owned Deployment")
    # Cascading further down: its ReplicaSets and Pods go too.
    wait_for(lambda: not apps.list_namespaced_replica_set(namespace).items, 60, "ReplicaSets to be collected")


def test_deployment_pods_become_ready_on_kwok_nodes(cluster: Cluster, namespace: str) -> None:
    api = cluster.api()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, _deployment("web", 2))

    def available() -> bool:
        d = apps.read_namespaced_deployment_status("web", namespace)
        return (d.status.available_replicas or 0) == 2

    wait_for(available, 90, "2 available replicas")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name, "pod was not scheduled"
        assert pod.status.phase == "Running"
        ready = {c.type: c.status for c in pod.status.conditions}
        assert ready.get("Ready") == "True"
    if cluster.local is not None:
        assert {p.spec.node_name for p in pods} <= {"kwok-node-0", "kwok-node-1"}


def test_narrow_role_gets_403_outside_it(cluster: Cluster, namespace: str) -> None:
    api = cluster.api()
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="cm-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="cm-reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="cm-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
        ),
    )
    token = core.create_namespaced_service_account_token(
        "reader", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    ).status.token

    conf = client.Configuration()
    conf.host = api.configuration.host
    conf.ssl_ca_cert = api.configuration.ssl_ca_cert
    conf.verify_ssl = api.configuration.verify_ssl
    conf.api_key = {"authorization": f"Bearer {token}"}
    as_reader = client.CoreV1Api(client.ApiClient(conf))

    # Inside the Role: allowed (retry briefly while the RBAC cache catches up).
    wait_for(
        lambda: _allowed(lambda: as_reader.list_namespaced_config_map(namespace)), 30, "the Role to apply"
    )
    for forbidden in (
        lambda: as_reader.list_namespaced_secret(namespace),
        lambda: as_reader.list_namespaced_config_map("default"),
        lambda: as_reader.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
        ),
    ):
        with pytest.raises(ApiException) as err:
            forbidden()
        assert err.value.status == 403


def _allowed(fn: Callable[[], Any]) -> bool:
    try:
        fn()
        return True
    except ApiException as exc:
        if exc.status == 403:
            return False
        raise


def test_watch_survives_apiserver_restart(cluster: Cluster, namespace: str) -> None:
    """A reflector-style watch (list, watch from resourceVersion, resume on disconnect)
    keeps its place across an API server restart: nothing created before, during or
    after the restart is missed, and it resumes rather than relisting from scratch."""
    if cluster.local is None:
        pytest.skip("restarting the API server needs the local control plane, not LLMPLATFORM_E2E_KUBECONFIG")
    core = client.CoreV1Api(cluster.api())
    seen: set[str] = set()
    reconnects = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    # List before anything is created, so every later object must arrive as a watch event.
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version

    def reflector() -> None:
        nonlocal reconnects, rv
        while not stop.is_set():
            try:
                for ev in watch.Watch().stream(
                    core.list_namespaced_config_map,
                    namespace,
                    resource_version=rv,
                    timeout_seconds=5,
                    _request_timeout=10,
                ):
                    obj = ev["object"]
                    rv = obj.metadata.resource_version
                    if ev["type"] == "ADDED":
                        seen.add(obj.metadata.name)
            except ApiException as exc:
                if exc.status == 410:  # expired: a real reflector relists
                    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
                reconnects += 1
                time.sleep(0.5)
            except Exception:  # connection refused/reset while the server is down
                reconnects += 1
                time.sleep(0.5)
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)
                return

    t = threading.Thread(target=reflector, daemon=True)
    t.start()
    mk = lambda name: core.create_namespaced_config_map(  # noqa: E731
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
    )
    mk("before")
    wait_for(lambda: "before" in seen, 30, "the watch to see 'before'")
    cluster.local.restart_apiserver()
    after = f"after-{uuid.uuid4().hex[:6]}"
    mk(after)
    wait_for(lambda: after in seen, 60, "the watch to see the object created after the restart")
    stop.set()
    t.join(15)
    assert not errors
    assert reconnects >= 1, "the watch never noticed the restart"
