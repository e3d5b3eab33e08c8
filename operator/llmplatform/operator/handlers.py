"""Kopf wiring: indices of everything the render needs, and a nudge on every change.

Why indices plus one loop (not per-object create/update handlers): Kopf fills its in-memory
indices from the initial LIST before it runs any handler, so the first pass sees the whole
cluster and a restart with nothing changed writes nothing. Handlers here only record the
latest state and wake the loop; no handler writes, patches annotations or adds finalizers,
so users' objects stay byte-for-byte what they applied (Argo CD sees no drift).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import Counter, Gauge

from llmplatform.contract.names import (
    GROUP,
    KIND_MODEL,
    KIND_POLICY,
    KIND_QUOTA,
    MANAGED_BY,
    PLURAL_MODEL,
    PLURAL_POLICY,
    PLURAL_QUOTA,
    VERSION,
)
from llmplatform.operator.engine import PassReport, Reconciler, Snapshot
from llmplatform.operator.tracing import PassTracer
from llmplatform.render import GatewayMounts, missing_deployment, mounts_from_deployment

log = logging.getLogger("llmplatform.operator")

MANAGED = MANAGED_BY

# index id -> (group, version, plural, kind, label filter)
WATCHED: dict[str, tuple[str, str, str, str, dict[str, str] | None]] = {
    "llmmodels_idx": (GROUP, VERSION, PLURAL_MODEL, KIND_MODEL, None),
    "routingpolicies_idx": (GROUP, VERSION, PLURAL_POLICY, KIND_POLICY, None),
    "tenantquotas_idx": (GROUP, VERSION, PLURAL_QUOTA, KIND_QUOTA, None),
    "secrets_idx": ("", "v1", "secrets", "Secret", None),
    "deployments_idx": ("apps", "v1", "deployments", "Deployment", MANAGED),
    "services_idx": ("", "v1", "services", "Service", MANAGED),
    "hpas_idx": ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", MANAGED),
    "networkpolicies_idx": ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", MANAGED),
    "configmaps_idx": ("", "v1", "configmaps", "ConfigMap", MANAGED),
}
PASSES = Counter("llmplatform_operator_passes", "Completed reconcile passes")
PASS_SECONDS = Gauge("llmplatform_operator_last_pass_seconds", "Duration of the last reconcile pass")
PASS_FAILURES = Counter("llmplatform_operator_pass_failures", "Reconcile passes that raised")

GATEWAY_INDEX = "gateway_idx"
"""The gateway Deployment (`--gateway-deployment`), indexed as the credentials its pods can read."""

# Secrets the render can need: Opaque ones (keys and upstream credentials). Helm releases,
# service-account tokens, TLS and registry Secrets are never read, so never held in memory.
SECRET_TYPES = {"Opaque", "", None}


@dataclass
class Loop:
    """The reconcile loop: coalesces bursts of events into one pass, re-runs while changes
    keep arriving, retries failed passes with backoff, and resyncs periodically."""

    reconciler: Reconciler
    platform_namespace: str
    debounce: float = 0.05
    resync_seconds: float = 300.0
    usage_seconds: float | None = None  # refresh TenantQuota usage this often, when configured
    gateway_deployment: str | None = None  # `--gateway-deployment`: check models' credentials
    indices: dict[str, Any] | None = None
    deleted: dict[tuple[str, str, str], tuple[float, int]] = field(default_factory=dict)
    platform_namespace_exists: bool = False
    passes: int = 0
    last: PassReport | None = None
    tracer: PassTracer | None = None
    """A span per pass when tracing is on (tracing.py)."""
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def poke(self, indices: Mapping[str, Any]) -> None:
        if self.indices is None:
            ids = [*WATCHED, GATEWAY_INDEX] if self.gateway_deployment else list(WATCHED)
            self.indices = {k: indices[k] for k in ids}
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="llmplatform-reconcile")

    def record_deletion(self, kind: str, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        try:
            rv = int(meta.get("resourceVersion", -1))
        except (TypeError, ValueError):
            return
        self.deleted[(kind, str(meta.get("namespace", "")), str(meta.get("name", "")))] = (
            time.monotonic(),
            rv,
        )

    def snapshot(self) -> Snapshot:
        assert self.indices is not None
        horizon = time.monotonic() - 120
        self.deleted = {k: v for k, v in self.deleted.items() if v[0] > horizon}
        snap = Snapshot(
            platform_namespace_exists=self.platform_namespace_exists,
            deleted={k: rv for k, (_, rv) in self.deleted.items()},
            gateway_mounts=self.gateway_mounts(),
        )
        for index_id, (_, _, _, kind, _) in WATCHED.items():
            for key, store in self.indices[index_id].items():
                body = next(iter(store), None)
                if body is None:
                    continue
                namespace, name = key
                if kind == "LLMModel":
                    snap.models.append(body)
                elif kind == "RoutingPolicy":
                    snap.policies.append(body)
                elif kind == "TenantQuota":
                    snap.quotas.append(body)
                elif kind == "Secret":
                    snap.secrets[(namespace, name)] = body
                else:
                    snap.children[(kind, namespace, name)] = body
        return snap

    def gateway_mounts(self) -> GatewayMounts | None:
        """What the gateway Deployment mounts (None when not checked, see `--gateway-deployment`)."""
        if self.gateway_deployment is None:
            return None
        assert self.indices is not None
        store = self.indices[GATEWAY_INDEX].get((self.platform_namespace, self.gateway_deployment))
        mounts = next(iter(store), None) if store is not None else None
        if isinstance(mounts, GatewayMounts):
            return mounts
        return missing_deployment(self.platform_namespace, self.gateway_deployment)

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._dirty.wait(), timeout=min(self.resync_seconds, self.usage_seconds or 1e9)
                )
            await asyncio.sleep(self.debounce)
            self._dirty.clear()
            try:
                snap = self.snapshot()
                if self.tracer is None:
                    report = await asyncio.to_thread(self.reconciler.reconcile, snap)
                else:
                    report = await asyncio.to_thread(
                        self.tracer.reconcile, self.passes + 1, self.reconciler.reconcile, snap
                    )
            except Exception:
                PASS_FAILURES.inc()
                log.exception("reconcile pass failed; retrying in %.0fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                self._dirty.set()
                continue
            self.passes += 1
            self.last = report
            PASSES.inc()
            PASS_SECONDS.set(report.seconds)
            level = logging.INFO if report.writes or report.problems else logging.DEBUG
            log.log(
                level,
                "pass %d: %d writes in %.2fs, config %s%s",
                self.passes,
                report.writes,
                report.seconds,
                report.config_hash[:12],
                f", problems: {report.problems}" if report.problems else "",
            )
            if report.failures:  # level-based: the next pass retries whatever did not land
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                self._dirty.set()
            else:
                backoff = 1.0


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    return dict(body)


def _secret_value(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "labels", "resourceVersion", "ownerReferences")
            if k in meta
        },
        "data": dict(body.get("data") or {}),
    }


def register(registry: kopf.OperatorRegistry, loop: Loop, platform_namespace: str) -> None:
    """Attach indices and event handlers for every watched kind to `registry`."""

    def make_index(index_id: str, kind: str) -> Any:
        # async: Kopf runs sync handlers in a thread pool, a needless hop per object
        async def index(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[tuple[str, str], Any]:
            if kind == "Secret":
                if body.get("type") not in SECRET_TYPES:
                    return {}
                return {(namespace, name): _secret_value(body)}
            return {(namespace, name): _plain(body)}

        index.__name__ = index_id
        return index

    async def on_event(**kwargs: Any) -> None:
        loop.poke(kwargs)

    for index_id, (group, version, plural, kind, labels) in WATCHED.items():
        kopf.index(group, version, plural, id=index_id, labels=labels, registry=registry)(
            make_index(index_id, kind)
        )
        kopf.on.event(group, version, plural, id=f"poke-{plural}", labels=labels, registry=registry)(on_event)

    async def on_namespace(type: str | None, **kwargs: Any) -> None:
        loop.platform_namespace_exists = type != "DELETED"
        loop.poke(kwargs)

    if loop.gateway_deployment:
        _register_gateway(registry, loop, platform_namespace, loop.gateway_deployment)

    kopf.on.event(
        "",
        "v1",
        "namespaces",
        id="platform-namespace",
        field="metadata.name",
        value=platform_namespace,
        registry=registry,
    )(on_namespace)


def _register_gateway(registry: kopf.OperatorRegistry, loop: Loop, namespace: str, name: str) -> None:
    """Index the gateway Deployment as the credentials it mounts (`mounts.GatewayMounts`), and
    wake the loop when those change: a helm upgrade that mounts a provider Secret makes the
    models that need it Ready. Its status changes (every pod that comes and goes) change no
    mounts and cost no pass."""

    def mine(body: kopf.Body, **_: Any) -> bool:
        return bool(body.get("metadata", {}).get("namespace") == namespace)

    async def index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], GatewayMounts]:
        return {(namespace, name): mounts_from_deployment(body)}

    index.__name__ = GATEWAY_INDEX
    kopf.index(
        "apps",
        "v1",
        "deployments",
        id=GATEWAY_INDEX,
        field="metadata.name",
        value=name,
        when=mine,
        registry=registry,
    )(index)
    seen: list[GatewayMounts | None] = [None]

    async def on_gateway(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        mounts = None if type == "DELETED" else mounts_from_deployment(body)
        if mounts != seen[0] or type == "DELETED":
            seen[0] = mounts
            loop.poke(kwargs)

    kopf.on.event(
        "apps",
        "v1",
        "deployments",
        id="poke-gateway",
        field="metadata.name",
        value=name,
        when=mine,
        registry=registry,
    )(on_gateway)
