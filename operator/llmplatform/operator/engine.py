"""One reconcile pass: snapshot in, the fewest API writes that make the cluster match.

Why one pass over everything (not a handler per object): the gateway ConfigMap is an
aggregate of every resource and a quota's admission depends on its policy, so the operator
renders the whole set with the shared core and then compares, level-based, object by object.
Running the pass twice, or after a restart, writes nothing: each write happens only when the
live object (from Kopf's indices) differs from what the core rendered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils import parse_quantity

from llmplatform.contract import shards as gs
from llmplatform.contract.names import (
    API_VERSION,
    CONFIG_HASH_ANNOTATION,
    CONFIG_SHARD_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MODEL_LABEL,
    QUOTA_LABEL,
)
from llmplatform.operator.kube import Kube
from llmplatform.render import (
    CONFIG_MAP_NAME,
    ConditionVerdict,
    GatewayConfig,
    GatewayMounts,
    GeneratedKey,
    RenderResult,
    config_from_config_maps,
    generated_secret_name,
    merge_conditions,
    model_ready_condition,
    shard_config_map_name,
)
from llmplatform.render.incremental import IncrementalRenderer
from llmplatform.render.workloads import child_name

log = logging.getLogger("llmplatform.operator")

KEY_PREFIX = "llmp-"
CHILD_KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy")

Ref = tuple[str, str, str]  # kind, namespace, name


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def contains(live: Any, desired: Any) -> bool:
    """Whether `live` already holds everything in `desired`.

    Subset, not equality: the API server adds defaults and other managers' fields, which are
    not drift. None in `desired` means "absent or null". Quantities compare by value, since the
    API server stores "0.5" as "500m".
    """
    if desired is None:
        return live is None
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        return all(
            (live.get(k) is None) if v is None else (k in live and contains(live[k], v))
            for k, v in desired.items()
        )
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(map(contains, live, desired))
    if isinstance(desired, bool) or isinstance(live, bool):
        return live is desired
    if isinstance(desired, (int, float)) and isinstance(live, (int, float)):
        return float(live) == float(desired)
    if live == desired:
        return True
    if isinstance(desired, str) and isinstance(live, str | int | float):
        try:
            return bool(parse_quantity(live) == parse_quantity(desired))
        except ValueError:
            return False
    return False


def first_difference(live: Any, desired: Any, path: str = "") -> str | None:
    """Where `live` first fails to hold `desired` (for the log line that explains a write)."""
    if isinstance(desired, Mapping) and isinstance(live, Mapping):
        for key, value in desired.items():
            if not contains(live.get(key), value) if value is not None else live.get(key) is not None:
                return first_difference(live.get(key), value, f"{path}.{key}")
        return None
    if isinstance(desired, list) and isinstance(live, list) and len(live) == len(desired):
        for i, (a, b) in enumerate(zip(live, desired, strict=True)):
            if not contains(a, b):
                return first_difference(a, b, f"{path}[{i}]")
        return None
    if contains(live, desired):
        return None
    return f"{path or '.'}: {json.dumps(live)[:200]} != {json.dumps(desired)[:200]}"


def _rv(body: Mapping[str, Any] | None) -> int:
    """resourceVersion as a number, only to tell which of two copies of one object is newer
    (our write's response or the watch cache); -1 when unknown."""
    try:
        return int((body or {}).get("metadata", {}).get("resourceVersion", -1))
    except (TypeError, ValueError):
        return -1


@dataclass
class Snapshot:
    """The indexed state of the cluster at one instant, as plain dicts."""

    models: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)
    quotas: list[dict[str, Any]] = field(default_factory=list)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    children: dict[Ref, dict[str, Any]] = field(default_factory=dict)
    # resourceVersion of recent DELETED watch events, so a deletion that follows our own
    # write closely is not mistaken for the index lagging behind that write
    deleted: dict[Ref, int] = field(default_factory=dict)
    platform_namespace_exists: bool = True
    # what the gateway Deployment mounts (`--gateway-deployment`), None when not checked
    gateway_mounts: GatewayMounts | None = None


@dataclass
class PassReport:
    writes: int = 0
    seconds: float = 0.0
    config_hash: str = ""
    failures: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Reconciler:
    """Holds what must survive between passes: the responses of its own recent writes (so a
    watch cache that lags behind them causes no duplicate write), and the incremental
    renderer's per-object outcomes (which only save work: the result is a full render's)."""

    kube: Kube
    platform_namespace: str
    identity: str = "llmplatform-operator"
    workers: int = 8
    key_factory: Callable[[], str] = lambda: KEY_PREFIX + secrets.token_urlsafe(32)
    overlay_seconds: float = 30.0
    absent_seconds: float = 2.0
    # `--serving-overrides`: replaces fields of every self-hosted model's pod (see workloads.py)
    serving_overrides: dict[str, Any] | None = None
    # reads tenant usage ("namespace/name" -> status.usage) or None when unavailable, given
    # each tenant's current status.usage (the checkpoint restored when Redis lost its counters)
    usage: Callable[[dict[str, dict[str, Any] | None]], dict[str, dict[str, Any]] | None] | None = None
    # `--config-shard-bytes`, `--config-shards`: when and how far the gateway config is split
    shard_bytes: int = gs.DEFAULT_SHARD_BYTES
    max_shards: int = gs.DEFAULT_MAX_SHARDS
    _overlay: dict[Ref, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _deleted: set[str] = field(default_factory=set)
    # (content hash, parsed) of the last gateway ConfigMap read as the config in force
    _previous: tuple[str, GatewayConfig] | None = None
    # the shards of that config by hash: a new generation parses only its changed shards
    _shard_cache: gs.ShardCache = field(default_factory=gs.ShardCache)
    # ref -> (resourceVersion, desired) of an apply after which the object still differed
    # (another manager owns the extra field, e.g. a container someone added): not retried
    # until the object or the desired state changes, so it cannot become a write loop
    _settled: dict[Ref, tuple[int, str]] = field(default_factory=dict)
    # the render across passes: an object whose content and inputs did not change since the
    # last pass is not resolved again (render/incremental.py); same result as a full render
    _renderer: IncrementalRenderer = field(default_factory=IncrementalRenderer)

    # -- the view of one object: the index, or our newer write

    def live(self, ref: Ref, indexed: dict[str, Any] | None, deleted_rv: int = -1) -> dict[str, Any] | None:
        body = self._live(ref, indexed, deleted_rv)
        if body is not None and indexed is None:
            # Only our own recent write says it exists and the index has not seen it: a read
            # (not a write) settles whether it was deleted meanwhile, e.g. a key Secret
            # deleted to rotate the key right after the operator created it.
            body = self.kube.get(ref[0], ref[1], ref[2])
            if body is None:
                self._overlay.pop(ref, None)
            else:
                self._remember(ref, body)
        return body

    def _live(self, ref: Ref, indexed: dict[str, Any] | None, deleted_rv: int = -1) -> dict[str, Any] | None:
        """The newer of the indexed copy and the response to our own last write. Our copy is
        forgotten once the index has caught up or seen the object deleted, or after
        `overlay_seconds` (by then the watch has delivered whatever happened)."""
        entry = self._overlay.get(ref)
        if entry is None:
            return indexed
        written_at, mine = entry
        age = time.monotonic() - written_at
        # An object the index lacks is trusted to exist only briefly after we wrote it: past
        # that, it was more likely deleted (a duplicate apply is harmless, a missed one is not).
        expired = age > (self.overlay_seconds if indexed is not None else self.absent_seconds)
        caught_up = indexed is not None and _rv(indexed) >= _rv(mine)
        if expired or caught_up or deleted_rv >= _rv(mine):
            del self._overlay[ref]
            return indexed
        return mine

    def _remember(self, ref: Ref, response: Any) -> None:
        if isinstance(response, dict) and response.get("metadata"):
            self._overlay[ref] = (time.monotonic(), response)

    # -- the pass

    def reconcile(self, snap: Snapshot) -> PassReport:
        started = time.monotonic()
        before = self.kube.total_writes()
        report = PassReport()
        secret_bodies = self._key_secrets(snap, report)
        resources = [*snap.models, *snap.policies, *snap.quotas]
        previous = self._previous_config(snap)

        def render_all() -> RenderResult:
            return self._renderer.render(
                resources,
                secret_bodies.values(),
                platform_namespace=self.platform_namespace,
                previous=previous,
                serving_overrides=self.serving_overrides,
                gateway_mounts=snap.gateway_mounts,
                shard_bytes=self.shard_bytes,
                max_shards=self.max_shards,
            )

        result = render_all()
        # Keys are minted only for quotas with a grant in force, which only the render knows;
        # once minted, render again so the new keys are in this pass's config.
        missing = [k for k in result.generated_keys if (k.namespace, k.secret_name) not in secret_bodies]
        if missing:
            secret_bodies.update(self._create_keys(missing, report))
            result = render_all()
        report.config_hash = result.gateway_config.content_hash
        if result.sharded is not None and result.sharded.oversize:
            report.problems.append(
                f"gateway config shard(s) {', '.join(result.sharded.oversize)} exceed --config-shard-bytes "
                f"{self.shard_bytes} at --config-shards {self.max_shards}: raise gateway.configShards"
            )

        jobs: list[Callable[[], None]] = []
        shard_failures: list[str] = []
        children, index_job = self._children_jobs(snap, result, report, shard_failures)
        jobs += children
        usage = None
        if self.usage is not None:
            checkpoints = {
                f"{q['metadata']['namespace']}/{q['metadata']['name']}": (q.get("status") or {}).get("usage")
                for q in snap.quotas
            }
            usage = self.usage(
                {
                    f"{q.namespace}/{q.name}": checkpoints.get(f"{q.namespace}/{q.name}")
                    for q in result.quotas
                    if q.in_config
                }
            )
        jobs += self._status_jobs(snap, result, usage)
        self._run(jobs, report)
        if index_job is not None:
            # The index moves to the new generation only once every shard it lists is written
            # (a gateway that sees it before the kubelet delivered a shard keeps its old config).
            if shard_failures:
                report.problems.append(f"gateway config index not moved: shard(s) {shard_failures} failed")
            else:
                self._run([index_job], report)
        report.writes = self.kube.total_writes() - before
        report.seconds = time.monotonic() - started
        return report

    def _run(self, jobs: list[Callable[[], None]], report: PassReport) -> None:
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="llmp-write") as pool:
            for future in [pool.submit(job) for job in jobs]:
                exc = future.exception()
                if exc is not None:
                    report.failures += 1
                    report.problems.append(f"write failed: {exc}")
                    log.warning("write failed: %s", exc)

    # -- API keys

    def _key_secrets(self, snap: Snapshot, report: PassReport) -> dict[tuple[str, str], dict[str, Any]]:
        """The Secrets the render should see: the index overlaid with our own recent writes,
        minus generated Secrets whose key left the spec (deleted here)."""
        bodies = dict(snap.secrets)
        for ref in [r for r in self._overlay if r[0] == "Secret"]:
            resolved = self.live(ref, bodies.get((ref[1], ref[2])), snap.deleted.get(ref, -1))
            if resolved is not None:
                bodies[(ref[1], ref[2])] = resolved
        wanted: set[tuple[str, str]] = set()
        quotas: set[tuple[str, str]] = set()
        for quota in snap.quotas:
            meta = quota["metadata"]
            quotas.add((meta["namespace"], meta["name"]))
            if meta.get("deletionTimestamp"):
                continue
            for key in (quota.get("spec") or {}).get("apiKeys") or []:
                if not key.get("secretRef"):
                    wanted.add((meta["namespace"], generated_secret_name(meta["name"], key["name"])))
        for (ns, name), body in list(bodies.items()):
            labels = (body.get("metadata") or {}).get("labels") or {}
            owner = labels.get(QUOTA_LABEL)
            if owner is None or labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
                continue
            if (ns, owner) in quotas and (ns, name) not in wanted:
                uid = body["metadata"].get("uid")
                if uid not in self._deleted:
                    self.kube.delete("Secret", ns, name, uid)
                    self._deleted.add(uid)
                    report.problems.append(f"deleted Secret {ns}/{name}: its key left the spec")
                del bodies[(ns, name)]
        return bodies

    def _create_keys(
        self, missing: list[GeneratedKey], report: PassReport
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Mint the missing key Secrets in parallel (first run, or the Secret was deleted: that
        is how a key is rotated); returns what now exists, by (namespace, name)."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        lock = threading.Lock()

        def job(key: GeneratedKey) -> Callable[[], None]:
            def create() -> None:
                ns = key.namespace
                created = self.kube.create(key.secret(self.key_factory()))
                if created is None:  # exists already; our cache has not seen it yet
                    created = self.kube.get("Secret", ns, key.secret_name)
                if created is not None:
                    log.info("generated API key %r of TenantQuota %s/%s", key.key_name, ns, key.quota_name)
                    self._remember(("Secret", ns, key.secret_name), created)
                    with lock:
                        out[(ns, key.secret_name)] = created

            return create

        self._run([job(k) for k in missing], report)
        return out

    def _config_map(self, snap: Snapshot, name: str) -> dict[str, Any] | None:
        ref: Ref = ("ConfigMap", self.platform_namespace, name)
        return self.live(ref, snap.children.get(ref), snap.deleted.get(ref, -1))

    def _previous_config(self, snap: Snapshot) -> GatewayConfig | None:
        """The gateway config in force (our last ConfigMap, or our last index and its shards),
        parsed once per content hash."""
        body = self._config_map(snap, CONFIG_MAP_NAME)
        if body is None:
            return None
        annotations = body.get("metadata", {}).get("annotations") or {}
        digest = str(annotations.get(CONFIG_HASH_ANNOTATION, ""))
        if self._previous is not None and digest and self._previous[0] == digest:
            return self._previous[1]
        shard_bodies = {}
        for shard in self._live_index(snap):
            name = shard_config_map_name(shard)
            if (live := self._config_map(snap, name)) is not None:
                shard_bodies[name] = live
        config = config_from_config_maps(body, shard_bodies, self._shard_cache)
        self._previous = (digest, config) if config is not None and digest else None
        return config

    # -- children and the ConfigMap

    def _children_jobs(
        self, snap: Snapshot, result: RenderResult, report: PassReport, shard_failures: list[str]
    ) -> tuple[list[Callable[[], None]], Callable[[], None] | None]:
        """The writes that make the children and the gateway config's ConfigMaps match, and,
        apart, the write of a sharded config's index, which must wait for its shards."""
        jobs: list[Callable[[], None]] = []
        index_job: Callable[[], None] | None = None
        desired_refs: set[Ref] = set()
        live_index = self._live_index(snap)
        for obj in result.objects:
            meta = obj["metadata"]
            ref = (obj["kind"], meta["namespace"], meta["name"])
            desired_refs.add(ref)
            if obj["kind"] == "ConfigMap" and not snap.platform_namespace_exists:
                report.problems.append(
                    f"namespace {self.platform_namespace} does not exist: ConfigMap not written"
                )
                continue
            live = self.live(ref, snap.children.get(ref), snap.deleted.get(ref, -1))
            if live is not None and contains(live, obj):
                continue
            desired_key = json.dumps(obj, sort_keys=True)
            if live is not None and self._settled.get(ref) == (_rv(live), desired_key):
                continue
            if live is not None:
                log.info("%s %s/%s drifted at %s", ref[0], ref[1], ref[2], first_difference(live, obj))
            shard = (meta.get("labels") or {}).get(CONFIG_SHARD_LABEL)
            if shard is not None:
                written = _keep_previous_file(obj, live, live_index.get(shard))
                jobs.append(self._apply_job(ref, written, desired_key, shard_failures))
            elif result.sharded is not None and obj is result.config_map:
                index_job = self._apply_job(ref, obj, desired_key)
            else:
                jobs.append(self._apply_job(ref, obj, desired_key))
        for ref, body in snap.children.items():
            labels = body.get("metadata", {}).get("labels") or {}
            if ref[0] in CHILD_KINDS and MODEL_LABEL in labels and ref not in desired_refs:
                uid = body["metadata"].get("uid")
                if uid and uid not in self._deleted:
                    jobs.append(self._delete_job(ref, uid))
        jobs += self._stale_shard_jobs(snap, result, desired_refs, index_job is not None)
        return jobs, index_job

    def _live_index(self, snap: Snapshot) -> dict[str, str]:
        """Shard name -> file the index in force names ({} when the config is not sharded)."""
        body = self._config_map(snap, CONFIG_MAP_NAME)
        text = ((body or {}).get("data") or {}).get(gs.INDEX_KEY)
        if text is None:
            return {}
        try:
            return {ref.name: ref.file for ref in gs.load_index(str(text)).shards}
        except ValueError:
            return {}

    def _stale_shard_jobs(
        self, snap: Snapshot, result: RenderResult, desired_refs: set[Ref], index_pending: bool
    ) -> list[Callable[[], None]]:
        """Delete shard ConfigMaps no index references any more (the config shrank to fewer
        shards or back into one ConfigMap), but only once the index or single ConfigMap that
        no longer names them is written: until then, gateways may still need them."""
        if index_pending:
            return []
        index_ref: Ref = ("ConfigMap", self.platform_namespace, CONFIG_MAP_NAME)
        live = self._config_map(snap, CONFIG_MAP_NAME)
        if live is None or not contains(live, result.config_map) or index_ref not in desired_refs:
            return []
        jobs: list[Callable[[], None]] = []
        for ref, body in snap.children.items():
            labels = body.get("metadata", {}).get("labels") or {}
            if (
                ref[0] == "ConfigMap"
                and ref[1] == self.platform_namespace
                and CONFIG_SHARD_LABEL in labels
                and labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
                and ref not in desired_refs
            ):
                uid = body["metadata"].get("uid")
                if uid and uid not in self._deleted:
                    jobs.append(self._delete_job(ref, uid))
        return jobs

    def _delete_job(self, ref: Ref, uid: str) -> Callable[[], None]:
        def job() -> None:
            self.kube.delete(ref[0], ref[1], ref[2], uid)
            self._deleted.add(uid)  # only once it worked: a failed delete is retried next pass

        return job

    def _apply_job(
        self, ref: Ref, obj: dict[str, Any], desired_key: str, failures: list[str] | None = None
    ) -> Callable[[], None]:
        def job() -> None:
            try:
                response = self.kube.apply(obj)
            except Exception:
                if failures is not None:
                    failures.append(ref[2])
                raise
            self._remember(ref, response)
            if isinstance(response, dict) and not contains(response, obj):
                where = first_difference(response, obj)
                log.warning(
                    "%s %s/%s still differs after apply (owned by another manager?) at %s", *ref, where
                )
                self._settled[ref] = (_rv(response), desired_key)
            else:
                self._settled.pop(ref, None)

        return job

    # -- status

    def _status_jobs(
        self, snap: Snapshot, result: RenderResult, usage: dict[str, dict[str, Any]] | None = None
    ) -> list[Callable[[], None]]:
        now = now_rfc3339()
        jobs: list[Callable[[], None]] = []
        by_ref = {
            (kind, r["metadata"]["namespace"], r["metadata"]["name"]): r
            for kind, items in (
                ("LLMModel", snap.models),
                ("RoutingPolicy", snap.policies),
                ("TenantQuota", snap.quotas),
            )
            for r in items
        }
        for mv in result.models:
            ref = ("LLMModel", mv.namespace, mv.name)
            fields: dict[str, Any] = {"endpoint": mv.endpoint}
            ready = mv.ready
            if mv.serving:
                dref = ("Deployment", mv.namespace, child_name(mv.name))
                dep = self.live(dref, snap.children.get(dref))
                dstatus = (dep or {}).get("status") or {}
                ready = model_ready_condition(mv, dstatus.get("availableReplicas"))
                fields["replicas"] = dstatus.get("replicas", 0)
                fields["readyReplicas"] = dstatus.get("readyReplicas", 0)
            jobs += self._status_job(ref, by_ref.get(ref), [ready], fields, now)
        for pv in result.policies:
            ref = ("RoutingPolicy", pv.namespace, pv.name)
            jobs += self._status_job(ref, by_ref.get(ref), list(pv.conditions), pv.status_fields(), now)
        for qv in result.quotas:
            ref = ("TenantQuota", qv.namespace, qv.name)
            fields = qv.status_fields()
            if usage is not None and f"{qv.namespace}/{qv.name}" in usage:
                fields["usage"] = usage[f"{qv.namespace}/{qv.name}"]
            jobs += self._status_job(ref, by_ref.get(ref), list(qv.conditions), fields, now)
        return jobs

    def _status_job(
        self,
        ref: Ref,
        indexed: dict[str, Any] | None,
        conditions: list[ConditionVerdict],
        fields: dict[str, Any],
        now: str,
    ) -> list[Callable[[], None]]:
        body = self.live(ref, indexed)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return []
        generation = body["metadata"].get("generation")
        previous = body.get("status") or {}
        status = {
            **fields,
            "observedGeneration": generation,
            "conditions": merge_conditions(
                previous.get("conditions"), conditions, generation=generation, now=now
            ),
        }
        if contains(previous, status):
            return []
        transitions = _transitions(previous.get("conditions"), status["conditions"])

        def job() -> None:
            response = self.kube.patch_status(ref[0], ref[1], ref[2], status)
            self._remember(ref, response)
            for condition in transitions:
                self._event(body, condition)

        return [job]

    def _event(self, body: dict[str, Any], condition: dict[str, Any]) -> None:
        """A Kubernetes Event when a condition changes status, so `kubectl describe` tells the
        story; best effort (an Event that cannot be written is not a reason to retry)."""
        meta = body["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body.get("apiVersion", API_VERSION),
                "kind": body.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": condition["reason"],
            "message": f"{condition['type']}={condition['status']}: {condition['message']}"[:1024],
            "type": "Normal" if condition["status"] == "True" else "Warning",
            "source": {"component": "llmplatform-operator"},
            "reportingComponent": "llmplatform-operator",
            "reportingInstance": self.identity[:128],
            "firstTimestamp": now[:19] + "Z",
            "lastTimestamp": now[:19] + "Z",
            "count": 1,
        }
        try:
            self.kube.create(event)
        except Exception as exc:  # events are best effort
            log.debug("could not post event: %s", exc)


def _keep_previous_file(
    desired: dict[str, Any], live: Mapping[str, Any] | None, previous_file: str | None
) -> dict[str, Any]:
    """A shard ConfigMap to write: the new shard file plus the one the index in force names,
    when the live object still holds it. So a gateway that receives this shard before the new
    index still finds the file its current index lists; the older file goes at the next change
    of this shard (server-side apply drops the key we no longer send)."""
    if live is None or previous_file is None:
        return desired
    kept = (live.get("binaryData") or {}).get(previous_file)
    files = desired.get("binaryData") or {}
    if kept is None or previous_file in files:
        return desired
    return {**desired, "binaryData": {**files, previous_file: kept}}


def _transitions(
    previous: Iterable[Mapping[str, Any]] | None, new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed (Ready=False for another reason is news too:
    SecretNotFound once the Secret exists may become CredentialsNotMounted)."""
    old = {c.get("type"): (c.get("status"), c.get("reason")) for c in previous or []}
    return [c for c in new if old.get(c["type"]) != (c["status"], c["reason"])]


def describe(report: PassReport) -> str:
    return json.dumps(dataclasses.asdict(report))
