"""E2E helpers on a real API server: the custom-resource client, resource builders, a wait.

Why here: the operator, Argo CD, chart and usage tests all create LLMModels, RoutingPolicies
and TenantQuotas and wait for their conditions; one copy serves them all.
"""

from __future__ import annotations

import base64
import gzip
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmplatform.contract.names import CONFIG_SHARD_LABEL
from llmplatform.contract.shards import INDEX_KEY
from llmplatform.render import config_from_config_maps
from llmplatform_testing import procs
from llmplatform_testing.controlplane import Cluster

T = TypeVar("T")

GROUP, VERSION = "llmplatform.io", "v1alpha1"
PLURAL = {"LLMModel": "llmmodels", "RoutingPolicy": "routingpolicies", "TenantQuota": "tenantquotas"}
CM_NAME = "llmplatform-gateway-config"


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """`procs.wait_for` where an object that does not exist yet (404) counts as "not yet"."""

    def check() -> T | None:
        try:
            return predicate()
        except ApiException as exc:
            if exc.status != 404:
                raise
            return None

    return procs.wait_for(check, timeout, what, interval=0.2)  # type: ignore[return-value]


class Api:
    def __init__(self, cluster: Cluster) -> None:
        api = cluster.api()
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.net = client.NetworkingV1Api(api)
        self.coord = client.CoordinationV1Api(api)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        ns = obj["metadata"]["namespace"]
        created = self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL[obj["kind"]], obj)
        return cast(dict[str, Any], created)

    def get(self, kind: str, ns: str, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL[kind], name)
        )

    def patch(self, kind: str, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        patched = self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL[kind], name, patch)
        return cast(dict[str, Any], patched)

    def delete(self, kind: str, ns: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL[kind], name)

    def condition(self, kind: str, ns: str, name: str, ctype: str) -> dict[str, Any] | None:
        status = self.get(kind, ns, name).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == ctype), None)

    def config(self, ns: str) -> dict[str, Any]:
        """The gateway config the operator wrote: its single ConfigMap, or its index and shards."""
        cm = self.core.read_namespaced_config_map(CM_NAME, ns)
        if cm.data and INDEX_KEY in cm.data:
            shards = self.core.list_namespaced_config_map(ns, label_selector=CONFIG_SHARD_LABEL).items
            bodies: dict[str, Any] = {
                str(s.metadata.name): {"binaryData": s.binary_data} for s in shards if s.metadata
            }
            config = config_from_config_maps({"data": cm.data}, bodies)
            assert config is not None, f"the sharded config in {ns} is incomplete"
            return config.model_dump(mode="json", by_alias=True)
        if cm.data and "config.json" in cm.data:
            return cast(dict[str, Any], json.loads(cm.data["config.json"]))
        assert cm.binary_data is not None, f"ConfigMap {ns}/{CM_NAME} has neither config.json nor its gzip"
        return cast(
            dict[str, Any], json.loads(gzip.decompress(base64.b64decode(cm.binary_data["config.json.gz"])))
        )

    def secret_value(self, ns: str, name: str, key: str = "api-key") -> str:
        data = self.core.read_namespaced_secret(name, ns).data
        assert data is not None, f"Secret {ns}/{name} has no data"
        return base64.b64decode(data[key]).decode()


def model(
    name: str, ns: str, *, serving: bool = False, tier: str = "standard", **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"tier": tier, "contextWindow": 8192, **spec}
    if serving:
        body["serving"] = {"image": "vllm/vllm-openai:v0.6.3", "replicas": {"min": 1, "max": 3}}
    else:
        body["endpoint"] = {"url": f"https://{name}.example.com/v1"}
    meta = {"name": name, "namespace": ns, "labels": {"team": "ml", "argocd.argoproj.io/instance": "models"}}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "LLMModel", "metadata": meta, "spec": body}


def policy(
    name: str, ns: str, tiers: dict[str, list[str]], *, default: bool = True, **spec: Any
) -> dict[str, Any]:
    body = {"default": default, "tiers": [{"name": t, "models": m} for t, m in tiers.items()], **spec}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RoutingPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": body,
    }


def quota(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TenantQuota",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def is_true(cond: dict[str, Any] | None) -> bool:
    return bool(cond and cond["status"] == "True")


def events(api: Api, ns: str, name: str) -> list[tuple[str | None, str | None, str | None]]:
    """(type, reason, message) of the Events about object `name` in `ns`."""
    items = api.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason, e.message) for e in items]


def one_more_pass(api: Api, op: Any, p: str) -> None:
    """Wait for a pass that starts after everything so far: poke the operator with a label on
    LLMModel m1 (no effect on anything it renders) and wait for the pass it causes."""
    passes = op.metric("llmplatform_operator_passes_total")
    api.patch("LLMModel", p, "m1", {"metadata": {"labels": {"poke": str(time.monotonic_ns())}}})
    op.wait_passes(passes + 1)


def tenant_entry(api: Api, p: str, name: str) -> dict[str, Any] | None:
    """Tenant `name`'s entry in the gateway config the operator wrote in namespace `p`."""
    return next((x for x in api.config(p)["tenants"] if x["name"] == name), None)
