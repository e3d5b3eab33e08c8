"""A gateway config split into shards: an index plus one shared shard and N tenant shards.

Why: a ConfigMap holds at most 1 MiB, and the gzip of a 20,000-quota config is 97% of that.
Past `shard_bytes` (compressed), the config is stored as several objects instead of one:

- the **index** (`index.json` in `llmplatform-gateway-config`): the schemaVersion of the config,
  the shard format, the generation (the whole config's `contentHash`, the same value a single
  ConfigMap would carry) and, per shard, the file that holds it and the SHA-256 of its content;
- the **shared shard** (`shared`): defaultPolicy, models and policies, which every tenant needs,
  kept whole (they are not split by tenant, and a fleet's models and policies are small next to
  its tenants: 300 models and 10 policies are about 2% of the 2,000-quota config);
- the **tenant shards** `t000`..: each tenant goes to shard `sha256(tenant id) mod N`, so a
  tenant's shard depends only on its id and N, and a one-quota edit changes one shard. N is
  the smallest power of two (at most `max_shards`) for which every tenant shard compresses to
  at most `shard_bytes`; doubling N splits each shard in two.

Each shard's file name carries a prefix of its content hash, so the old and the new content of
one shard can sit side by side while the index moves (the operator keeps the previous file in
the shard's ConfigMap until the next change). The gateway applies a generation only when every
file the index lists is present and hashes to the listed value (`assemble`); anything else
raises `IncompleteGeneration` and the last complete generation keeps serving. The per-shard
hashes cover every byte the gateway reads, so the whole config is not re-hashed on load.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmplatform.contract.config import (
    GZIP_MAGIC,
    SCHEMA_VERSION,
    ConfigModel,
    GatewayConfig,
    ModelEntry,
    PolicyEntry,
    TenantEntry,
    UnsupportedSchemaVersion,
    canonical_json,
    compress_config,
    read_config_file,
)
from llmplatform.contract.shardargs import DEFAULT_MAX_SHARDS as DEFAULT_MAX_SHARDS
from llmplatform.contract.shardargs import DEFAULT_SHARD_BYTES as DEFAULT_SHARD_BYTES

SHARD_FORMAT = 1
"""Version of the index and shard layout (independent of the config's schemaVersion)."""
INDEX_KEY = "index.json"
SHARED = "shared"


class IncompleteGeneration(ValueError):
    """The index names a shard file that is missing or whose content does not match its hash
    (the kubelet has not delivered it yet, or it was torn or edited): not applied."""

    reason = "incomplete_generation"


class ShardRef(ConfigModel):
    name: str
    """`shared` or `t000`, `t001`, ...: also the suffix of the shard's ConfigMap name."""
    file: str
    """The key (file name) that holds the gzip of the shard's JSON."""
    sha256: str
    """Hex SHA-256 of the shard's uncompressed JSON."""
    tenants: int = 0


class ShardIndex(ConfigModel):
    schema_version: int
    shard_format: int
    generation: str
    """The assembled config's contentHash."""
    shards: list[ShardRef]


def tenant_shard(tenant_id: str, count: int) -> int:
    """Which of `count` tenant shards holds a tenant: stable for a given id and count."""
    return int.from_bytes(hashlib.sha256(tenant_id.encode("utf-8")).digest()[:8], "big") % count


def shard_name(index: int) -> str:
    return f"t{index:03d}"


def shard_file(name: str, digest: str) -> str:
    return f"{name}-{digest[:16]}.json.gz"


def _shard_text(body: dict[str, Any]) -> bytes:
    return (canonical_json(body) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Shard:
    ref: ShardRef
    packed: bytes
    """The gzip of the shard's JSON, as stored under `ref.file`."""


@dataclass(frozen=True)
class ShardedConfig:
    index: ShardIndex
    shards: tuple[Shard, ...]
    oversize: tuple[str, ...] = ()
    """Shards over `shard_bytes` compressed even at `max_shards` (or the shared shard, which is
    never split): written anyway, as long as the API server takes them."""

    def index_text(self) -> str:
        return dump_index(self.index)


def dump_index(index: ShardIndex) -> str:
    return json.dumps(index.model_dump(mode="json", by_alias=True), sort_keys=True, indent=2) + "\n"


def _make_shard(name: str, body: dict[str, Any], tenants: int = 0) -> Shard:
    text = _shard_text(body)
    digest = hashlib.sha256(text).hexdigest()
    ref = ShardRef(name=name, file=shard_file(name, digest), sha256=digest, tenants=tenants)
    return Shard(ref, compress_config(text.decode("utf-8")))


def _tenant_shards(tenants: list[dict[str, Any]], count: int) -> list[Shard]:
    buckets: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    for tenant in tenants:
        buckets[tenant_shard(tenant["id"], count)].append(tenant)
    return [
        _make_shard(
            shard_name(i),
            {"schemaVersion": SCHEMA_VERSION, "shard": shard_name(i), "tenants": bucket},
            len(bucket),
        )
        for i, bucket in enumerate(buckets)
    ]


def split_config(
    config: GatewayConfig,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
    max_shards: int = DEFAULT_MAX_SHARDS,
    estimate: int | None = None,
) -> ShardedConfig:
    """The sharded form of a sealed config: the smallest power of two of tenant shards (at most
    `max_shards`) whose every shard compresses to at most `shard_bytes`. `estimate` (the
    compressed size of the whole config, when the caller has it) saves trying small counts."""
    if shard_bytes <= 0 or max_shards <= 0:
        raise ValueError("shard_bytes and max_shards must be positive")
    body = config.model_dump(mode="json", by_alias=True)
    shared = _make_shard(
        SHARED,
        {
            "schemaVersion": SCHEMA_VERSION,
            "shard": SHARED,
            "defaultPolicy": body["defaultPolicy"],
            "models": body["models"],
            "policies": body["policies"],
        },
    )
    # The whole config compresses at least as well as its parts, so the estimate gives a lower
    # bound to start from; then double until every tenant shard fits.
    count = 1
    if estimate is not None:
        while count < max_shards and count * shard_bytes < estimate:
            count *= 2
    count = min(count, max_shards)
    while True:
        tenants = _tenant_shards(body["tenants"], count)
        largest = max(len(s.packed) for s in tenants)
        if largest <= shard_bytes or count >= max_shards:
            break
        count = min(count * 2, max_shards)
    oversize = tuple(s.ref.name for s in (shared, *tenants) if len(s.packed) > shard_bytes)
    index = ShardIndex(
        schema_version=SCHEMA_VERSION,
        shard_format=SHARD_FORMAT,
        generation=config.content_hash,
        shards=[shared.ref, *(s.ref for s in tenants)],
    )
    return ShardedConfig(index, (shared, *tenants), oversize)


def load_index(text: str | bytes) -> ShardIndex:
    """Parse `index.json`; UnsupportedSchemaVersion when its schemaVersion or shardFormat is
    not one this code knows (the gateway keeps its previous config)."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("gateway config index is not a JSON object")
    version, layout = raw.get("schemaVersion"), raw.get("shardFormat")
    if version != SCHEMA_VERSION:
        raise UnsupportedSchemaVersion(
            f"gateway config index schemaVersion {version!r} is not {SCHEMA_VERSION}"
        )
    if layout != SHARD_FORMAT:
        raise UnsupportedSchemaVersion(f"gateway config index shardFormat {layout!r} is not {SHARD_FORMAT}")
    index = ShardIndex.model_validate(raw)
    names = [s.name for s in index.shards]
    if not names or names[0] != SHARED or len(set(names)) != len(names):
        raise ValueError(f"gateway config index must list {SHARED!r} first and each shard once, got {names}")
    return index


class _SharedShard(ConfigModel):
    default_policy: str | None
    models: list[ModelEntry]
    policies: list[PolicyEntry]


class _TenantShard(ConfigModel):
    tenants: list[TenantEntry]


@dataclass
class ShardCache:
    """Validated shards by content hash: a reload after one shard changed reads, checks and
    validates only that shard. Holds the shards of the last assembled generation only."""

    parsed: dict[str, _SharedShard | _TenantShard] = field(default_factory=dict)


def _read_shard(
    index: ShardIndex, ref: ShardRef, read: Callable[[str], bytes | None]
) -> _SharedShard | _TenantShard:
    """One shard file, checked against the index and validated."""
    where = f"generation {index.generation[:12]}: shard {ref.name} file {ref.file}"
    data = read(ref.file)
    if data is None:
        raise IncompleteGeneration(f"{where} is not present yet")
    try:
        text = gzip.decompress(data) if data.startswith(GZIP_MAGIC) else data
    except (OSError, EOFError) as exc:
        raise IncompleteGeneration(f"{where} is not gzip: {exc}") from exc
    if hashlib.sha256(text).hexdigest() != ref.sha256:
        raise IncompleteGeneration(f"{where} does not hash to {ref.sha256[:12]}")
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("shard") != ref.name:
        raise ValueError(f"shard file {ref.file} does not hold shard {ref.name}")
    if doc.get("schemaVersion") != SCHEMA_VERSION:
        raise UnsupportedSchemaVersion(
            f"shard {ref.name} schemaVersion {doc.get('schemaVersion')!r} is not {SCHEMA_VERSION}"
        )
    kind = _SharedShard if ref.name == SHARED else _TenantShard
    return kind.model_validate(doc)


def assemble(
    index: ShardIndex, read: Callable[[str], bytes | None], cache: ShardCache | None = None
) -> GatewayConfig:
    """The config an index and its shard files describe. `read(file)` returns a file's bytes,
    or None when it is not there. Raises IncompleteGeneration unless every listed file is
    present with the listed hash.

    Each shard is validated on its own (and kept in `cache` by hash); the config is built from
    the validated parts without validating all of it again, so a reload after a one-shard
    change costs about one shard's parse."""
    cache = cache if cache is not None else ShardCache()
    parts = [cache.parsed.get(ref.sha256) or _read_shard(index, ref, read) for ref in index.shards]
    cache.parsed = {ref.sha256: part for ref, part in zip(index.shards, parts, strict=True)}
    shared = parts[0]
    if not isinstance(shared, _SharedShard):
        raise ValueError(f"the first shard of the index is not {SHARED!r}")
    tenants = [t for part in parts[1:] if isinstance(part, _TenantShard) for t in part.tenants]
    tenants.sort(key=lambda t: t.id)
    return GatewayConfig.model_construct(
        schema_version=index.schema_version,
        content_hash=index.generation,
        default_policy=shared.default_policy,
        models=list(shared.models),
        policies=list(shared.policies),
        tenants=tenants,
    )


def read_shard_dir(path: Path, cache: ShardCache | None = None) -> GatewayConfig:
    """The config of a folder holding `index.json` and the shard files (the gateway's mounted
    projected volume)."""
    index = load_index((path / INDEX_KEY).read_bytes())

    def read(name: str) -> bytes | None:
        if "/" in name or name.startswith("."):
            raise ValueError(f"shard file name {name!r} is not a plain file name")
        try:
            return (path / name).read_bytes()
        except FileNotFoundError:
            return None

    return assemble(index, read, cache)


def read_mounted_config(path: str | Path, cache: ShardCache | None = None) -> GatewayConfig:
    """What the gateway's `--config` names: a folder with `index.json` (sharded), or a file or
    folder with the single `config.json` / `config.json.gz` (`read_config_file`)."""
    p = Path(path)
    if p.is_dir() and (p / INDEX_KEY).is_file():
        return read_shard_dir(p, cache)
    return read_config_file(p)
