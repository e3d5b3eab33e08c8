"""Incremental rendering: `render`'s result, recomputing only the objects whose inputs changed.

Why: the operator renders the whole fleet on every pass, so a one-field quota edit cost a
full render (seconds at 2,000 quotas, tens of seconds at 20,000). Most of that is resolving
objects that did not change and whose inputs did not change either.

How it stays equal to the reference: `IncrementalRenderer.render` calls `core.render` itself,
with a `Resolver` (resolver.py) that memoizes each per-object call. An outcome is reused only
when

- the object is the same: its (uid, resourceVersion) as the API server gave it, or for
  manifests without one, the hash of its whole content (status included), and
- everything the rule read while computing it reads the same now. Reads are not guessed: the
  rule is handed recording views of its inputs (mappings, sets and the Secret store) that log
  each lookup together with what it saw, and each view refuses iteration, so a rule that
  started depending on "all quotas" would fail loudly here instead of going stale. A few
  scalar inputs (the default policy's id, the platform namespace, the gateway's mounts, the
  serving overrides) are logged as read by every rule that is given them, a safe superset.

Sealing and serializing the config reuse each entry's canonical JSON (an entry object that
was reused is the same object, so its text is too) and join them; the small top-level fields
go through the contract's own `canonical_json`, and a config small enough to be written
indented is dumped by the contract's `dump_config` as before. Everything else (default policy,
provider credentials, keys shared between quotas, assembling the config) is `render`'s own
code, run in full every time. The
property test (tests/unit/test_render_incremental.py) compares the two after every step of
random edit sequences.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Container, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from llmplatform.api.llmmodel import LLMModel
from llmplatform.api.routingpolicy import RoutingPolicy
from llmplatform.api.tenantquota import TenantQuota
from llmplatform.contract import config as gc
from llmplatform.contract import shards as gs
from llmplatform.render.core import DEFAULT_PLATFORM_NAMESPACE, RenderResult, render
from llmplatform.render.inputs import Parsed
from llmplatform.render.models import ModelOutcome
from llmplatform.render.mounts import GatewayMounts
from llmplatform.render.policies import PolicyOutcome
from llmplatform.render.quotas import PreviousConfig, ProviderCredentials, QuotaOutcome
from llmplatform.render.resolver import QuotaInputs, Resolver
from llmplatform.render.secrets import SecretStore

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

Read = tuple[str, Hashable, object]
"""(source, key, what the lookup saw)."""


def content_token(raw: Mapping[str, Any]) -> Hashable:
    """What identifies one version of a resource: (uid, resourceVersion) from the API server
    (the same rule as the parse cache, inputs.py), else the hash of its content."""
    meta = raw.get("metadata") or {}
    uid, rv = meta.get("uid"), meta.get("resourceVersion")
    if uid and rv:
        return ("rv", str(uid), str(rv))
    text = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return ("sha256", hashlib.sha256(text.encode("utf-8")).hexdigest())


class World:
    """How to look up, now, what a rule saw: one function per source."""

    def __init__(self, sources: Mapping[str, Callable[[Hashable], object]]) -> None:
        self.sources = sources

    def observe(self, source: str, key: Hashable) -> object:
        return self.sources[source](key)

    def unchanged(self, reads: Iterable[Read]) -> bool:
        return all(self.observe(source, key) == seen for source, key, seen in reads)


@dataclass
class Reads:
    """The log of one rule's lookups."""

    world: World
    log: list[Read] = field(default_factory=list)

    def note(self, source: str, key: Hashable) -> None:
        self.log.append((source, key, self.world.observe(source, key)))


class RecordedMapping(Mapping[K, V]):
    """A mapping whose lookups are logged; iterating it would make the reader depend on every
    entry, so it is refused."""

    def __init__(self, data: Mapping[K, V], source: str, reads: Reads) -> None:
        self._data, self._source, self._reads = data, source, reads

    def __getitem__(self, key: K) -> V:
        self._reads.note(self._source, key)
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        raise TypeError(f"a rule may only look up {self._source} entries, not iterate them")

    def __len__(self) -> int:
        raise TypeError(f"a rule may only look up {self._source} entries, not count them")


class RecordedSet(Container[str]):
    """A set whose membership tests are logged."""

    def __init__(self, data: Container[str], source: str, reads: Reads) -> None:
        self._data, self._source, self._reads = data, source, reads

    def __contains__(self, key: object) -> bool:
        self._reads.note(self._source, key)
        return key in self._data


class RecordedSecrets(SecretStore):
    """The Secret store, logging which Secrets are read (a Secret's every value counts: any
    change to it re-resolves its readers)."""

    def __init__(self, store: SecretStore, reads: Reads) -> None:
        super().__init__(())
        self._store, self._reads = store, reads

    def __repr__(self) -> str:
        return f"Recorded({self._store!r})"

    def exists(self, namespace: str, name: str) -> bool:
        self._reads.note("secret", (namespace, name))
        return self._store.exists(namespace, name)

    def value(self, namespace: str, name: str, key: str) -> bytes | None:
        self._reads.note("secret", (namespace, name))
        return self._store.value(namespace, name, key)

    def values_of(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        self._reads.note("secret", (namespace, name))
        return self._store.values_of(namespace, name)


def _secret_source(store: SecretStore) -> Callable[[Hashable], object]:
    def observe(key: Hashable) -> object:
        assert isinstance(key, tuple)
        return store.values_of(str(key[0]), str(key[1]))

    return observe


def _token_source(tokens: Mapping[tuple[str, str], Hashable], kind: str) -> Callable[[Hashable], object]:
    return lambda key: tokens.get((kind, str(key)))


def _member_source(data: Container[str]) -> Callable[[Hashable], object]:
    return lambda key: key in data


def _lookup_source(data: Mapping[Any, Any]) -> Callable[[Hashable], object]:
    return lambda key: data.get(key)


ENTRY_LISTS = ("models", "policies", "tenants")
"""The GatewayConfig fields that are lists of per-object entries (by field name)."""


@dataclass
class EntryTexts:
    """Canonical JSON of config entries, by entry object, kept for the entries of the last
    config only."""

    _texts: dict[int, tuple[gc.ConfigModel, str]] = field(default_factory=dict)

    def text(self, entry: gc.ConfigModel, used: dict[int, tuple[gc.ConfigModel, str]]) -> str:
        known = self._texts.get(id(entry))
        if known is None or known[0] is not entry:
            known = (entry, gc.canonical_json(entry.model_dump(mode="json", by_alias=True)))
        used[id(entry)] = known
        return known[1]

    def seal_and_dump(self, config: gc.GatewayConfig) -> tuple[gc.GatewayConfig, str]:
        """What `gc.seal` and `gc.dump_config` give, from the entries' cached texts."""
        used: dict[int, tuple[gc.ConfigModel, str]] = {}
        aliases = {name: gc.GatewayConfig.model_fields[name].alias or name for name in ENTRY_LISTS}
        parts = {
            key: gc.canonical_json(value)
            for key, value in config.model_dump(mode="json", by_alias=True, exclude=set(ENTRY_LISTS)).items()
        }
        for name, alias in aliases.items():
            parts[alias] = "[" + ",".join(self.text(e, used) for e in getattr(config, name)) + "]"
        self._texts = used

        def joined(keys: Iterable[str]) -> str:
            return (
                "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{parts[k]}" for k in sorted(keys)) + "}"
            )

        digest = hashlib.sha256(joined(k for k in parts if k != "contentHash").encode("utf-8")).hexdigest()
        sealed = config.model_copy(update={"content_hash": digest})
        parts["contentHash"] = gc.canonical_json(digest)
        compact = joined(parts) + "\n"
        if len(compact) > gc.INLINE_LIMIT // 2:
            return sealed, compact
        return sealed, gc.dump_config(sealed)


@dataclass
class _Entry(Generic[T]):
    token: Hashable
    reads: tuple[Read, ...]
    outcome: T


@dataclass
class MemoResolver(Resolver):
    """A `Resolver` that reuses each object's outcome while the object and its reads are
    unchanged. `tokens` are set per render by `IncrementalRenderer`; `stats` counts reuses
    ("hit") and recomputations ("miss") per kind, for tests and the benchmark."""

    tokens: dict[tuple[str, str], Hashable] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    _tables: dict[str, dict[str, _Entry[Any]]] = field(default_factory=dict)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _texts: EntryTexts = field(default_factory=EntryTexts)
    _quota_world: tuple[QuotaInputs, World] | None = None

    def begin(self, tokens: dict[tuple[str, str], Hashable]) -> None:
        self.tokens, self._seen = tokens, set()
        self.stats.clear()

    def prune(self) -> None:
        """Forget the objects the last render did not ask about (deleted, or invalid now)."""
        for kind, table in self._tables.items():
            for id_ in [i for i in table if (kind, i) not in self._seen]:
                del table[id_]

    def _memo(self, kind: str, id_: str, world: World, compute: Callable[[Reads], T], table: str = "") -> T:
        table = table or kind
        self._seen.add((table, id_))
        token = self.tokens.get((kind, id_))
        entries = self._tables.setdefault(table, {})
        entry = entries.get(id_)
        if token is not None and entry is not None and entry.token == token and world.unchanged(entry.reads):
            self.stats[f"{table}.hit"] += 1
            return entry.outcome  # type: ignore[no-any-return]
        self.stats[f"{table}.miss"] += 1
        reads = Reads(world)
        outcome = compute(reads)
        if token is not None:
            entries[id_] = _Entry(token, tuple(reads.log), outcome)
        return outcome

    def model(
        self, parsed: Parsed[LLMModel], secrets: SecretStore, mounts: GatewayMounts | None
    ) -> ModelOutcome:
        world = World({"secret": _secret_source(secrets), "mounts": lambda _: mounts})

        def compute(reads: Reads) -> ModelOutcome:
            reads.note("mounts", None)
            return super(MemoResolver, self).model(parsed, RecordedSecrets(secrets, reads), mounts)

        return self._memo("LLMModel", parsed.id, world, compute)

    def policy(
        self,
        parsed: Parsed[RoutingPolicy],
        models: Mapping[str, Parsed[LLMModel]],
        known_models: Container[str],
        usable_models: Container[str],
        default_id: str | None,
    ) -> PolicyOutcome:
        world = World(
            {
                "model": _token_source(self.tokens, "LLMModel"),
                "known-model": _member_source(known_models),
                "usable-model": _member_source(usable_models),
                "default-policy": lambda _: default_id,
            }
        )

        def compute(reads: Reads) -> PolicyOutcome:
            reads.note("default-policy", None)
            return super(MemoResolver, self).policy(
                parsed,
                RecordedMapping(models, "model", reads),
                RecordedSet(known_models, "known-model", reads),
                RecordedSet(usable_models, "usable-model", reads),
                default_id,
            )

        return self._memo("RoutingPolicy", parsed.id, world, compute)

    def quota(self, parsed: Parsed[TenantQuota], given: QuotaInputs) -> QuotaOutcome:
        if self._quota_world is None or self._quota_world[0] is not given:
            self._quota_world = (given, self._world_of(given))
        world = self._quota_world[1]
        previous = given.previous

        def compute(reads: Reads) -> QuotaOutcome:
            for source in ("default-policy", "platform-namespace", "previous"):
                reads.note(source, None)
            recorded = QuotaInputs(
                policies=RecordedMapping(given.policies, "policy", reads),
                default_id=given.default_id,
                secrets=RecordedSecrets(given.secrets, reads),
                platform_namespace=given.platform_namespace,
                invalid_policies=RecordedSet(given.invalid_policies, "invalid-policy", reads),
                providers=ProviderCredentials(
                    RecordedMapping(given.providers.by_secret, "provider-secret", reads),
                    RecordedMapping(given.providers.by_hash, "provider-hash", reads),
                ),
                previous=(
                    PreviousConfig(
                        RecordedMapping(previous.tenants, "previous-tenant", reads),
                        RecordedMapping(previous.policies, "previous-policy", reads),
                    )
                    if previous is not None
                    else None
                ),
                usable_models=RecordedSet(given.usable_models, "usable-model", reads),
            )
            return super(MemoResolver, self).quota(parsed, recorded)

        return self._memo("TenantQuota", parsed.id, world, compute)

    def _world_of(self, given: QuotaInputs) -> World:
        """What a quota's reads are checked against (one per render: `given` is)."""
        previous = given.previous
        return World(
            {
                "policy": _token_source(self.tokens, "RoutingPolicy"),
                "secret": _secret_source(given.secrets),
                "invalid-policy": _member_source(given.invalid_policies),
                "provider-secret": _lookup_source(given.providers.by_secret),
                "provider-hash": _lookup_source(given.providers.by_hash),
                "previous-tenant": _lookup_source(previous.tenants if previous else {}),
                "previous-policy": _lookup_source(previous.policies if previous else {}),
                "previous": lambda _: previous is not None,
                "usable-model": _member_source(given.usable_models),
                "default-policy": lambda _: given.default_id,
                "platform-namespace": lambda _: given.platform_namespace,
            }
        )

    def seal_and_dump(self, config: gc.GatewayConfig) -> tuple[gc.GatewayConfig, str]:
        return self._texts.seal_and_dump(config)

    def children(
        self, parsed: Parsed[LLMModel], platform_namespace: str, overrides: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        world = World({"platform-namespace": lambda _: platform_namespace, "overrides": lambda _: overrides})

        def compute(reads: Reads) -> list[dict[str, Any]]:
            reads.note("platform-namespace", None)
            reads.note("overrides", None)
            return super(MemoResolver, self).children(parsed, platform_namespace, overrides)

        return self._memo("LLMModel", parsed.id, world, compute, table="children")


@dataclass
class IncrementalRenderer:
    """`render` across calls, reusing what did not change (see the module docstring). Holds one
    entry per object of the last call; the same arguments give the same result as `render`."""

    resolver: MemoResolver = field(default_factory=MemoResolver)

    @property
    def stats(self) -> Counter[str]:
        """Reused ("<kind>.hit") and recomputed ("<kind>.miss") outcomes in the last call."""
        return self.resolver.stats

    def render(
        self,
        resources: Iterable[Mapping[str, Any]],
        secrets: Iterable[Mapping[str, Any]],
        *,
        platform_namespace: str = DEFAULT_PLATFORM_NAMESPACE,
        previous: gc.GatewayConfig | None = None,
        serving_overrides: Mapping[str, Any] | None = None,
        gateway_mounts: GatewayMounts | None = None,
        shard_bytes: int = gs.DEFAULT_SHARD_BYTES,
        max_shards: int = gs.DEFAULT_MAX_SHARDS,
    ) -> RenderResult:
        resources = list(resources)
        tokens: dict[tuple[str, str], Hashable] = {}
        for raw in resources:
            meta = raw.get("metadata") or {}
            ref = (str(raw.get("kind", "")), f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}")
            tokens[ref] = content_token(raw)
        self.resolver.begin(tokens)
        result = render(
            resources,
            secrets,
            platform_namespace=platform_namespace,
            previous=previous,
            serving_overrides=serving_overrides,
            gateway_mounts=gateway_mounts,
            shard_bytes=shard_bytes,
            max_shards=max_shards,
            resolver=self.resolver,
        )
        self.resolver.prune()
        return result
