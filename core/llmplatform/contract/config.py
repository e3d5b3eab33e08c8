"""The gateway config: the versioned contract between the operator and the gateway.

Why its own types (not the CRD types): like Envoy AI Gateway's filterapi, this config must
not be tied to Kubernetes, so the gateway can load it from a file, test against it and evolve
separately. It carries API key *hashes* and Secret *references*, never credentials. Every
serialization is canonical (sorted keys, fixed separators), so unchanged input gives
byte-identical output, and `contentHash` lets the gateway tell versions apart cheaply. A gateway
that meets a `schemaVersion` it does not know keeps serving its previous config.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from llmplatform.contract.names import CONFIG_HASH_ANNOTATION as CONFIG_HASH_ANNOTATION
from llmplatform.contract.names import DEFAULT_RETENTION_DAYS, RETENTION_DAYS

SCHEMA_VERSION = 1
CONFIG_MAP_NAME = "llmplatform-gateway-config"
CONFIG_KEY = "config.json"
# A ConfigMap holds at most 1 MiB. Configs larger than INLINE_LIMIT (thousands of tenants) are
# stored gzip-compressed under CONFIG_GZ_KEY in binaryData instead; JSON of this shape
# compresses about tenfold, so one ConfigMap carries roughly 20,000 tenants.
CONFIG_GZ_KEY = "config.json.gz"
INLINE_LIMIT = 512 * 1024
GZIP_MAGIC = b"\x1f\x8b"

SecretResolver = Callable[[str, str, str], bytes | None]
"""(namespace, name, key) -> a Secret value, or None when it cannot be read: how whoever loads
a config tells the gateway the upstream credentials its `apiKeySecretRef`s name."""


class ConfigModel(BaseModel):
    """Base: camelCase JSON, immutable, and tolerant of fields added by a newer operator
    within the same schemaVersion."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )


class SecretRef(ConfigModel):
    """Where the gateway finds a credential: a Secret it has mounted or may read."""

    namespace: str
    name: str
    key: str


class Pricing(ConfigModel):
    input_per_million_tokens: float
    output_per_million_tokens: float


class Priors(ConfigModel):
    """Scoring inputs used until the gateway has observed values."""

    expected_latency_ms: int | None
    availability: float | None


class ModelEntry(ConfigModel):
    id: str
    namespace: str
    name: str
    tier: str
    provider: str
    upstream_model: str
    url: str
    api_key_secret_ref: SecretRef | None
    self_hosted: bool
    context_window: int
    max_output_tokens: int | None
    pricing: Pricing
    priors: Priors
    capabilities: list[str]
    max_data_classification: str
    region: str | None
    tls: bool | None = None
    """Whether the model is reached over TLS: its declared endpoint url is https://. Rendered
    from the declared url (a self-hosted model's Service url is plain http://), and kept when a
    local stand-in replaces `url` (`--upstream-override`, the demo). Absent (older operators):
    the gateway reads it from `url`."""
    ca_bundle_secret_ref: SecretRef | None = None
    """PEM CA certificates the upstream's certificate must chain to (instead of the system's);
    absent: the system's trusted CAs. Verification is always on."""


class TierEntry(ConfigModel):
    name: str
    models: list[str]
    """Model ids, in fallback order; only models present in `models`."""


class Fallback(ConfigModel):
    max_attempts: int
    retry_on: list[int | str]
    across_tiers: list[str]


class Scoring(ConfigModel):
    availability: float
    cost: float
    latency: float
    priority: float


class Timeouts(ConfigModel):
    connect_seconds: float
    request_seconds: float
    stream_idle_seconds: float


class CircuitBreaker(ConfigModel):
    consecutive_failures: int
    open_seconds: float


class ClassificationRule(ConfigModel):
    classification: str
    allowed_tiers: list[str] | None
    allowed_regions: list[str] | None
    pii_redaction: bool | None


class DataGovernance(ConfigModel):
    pii_redaction: bool
    rules: list[ClassificationRule]
    output_scanning: bool = False
    """Added within schemaVersion 1; absent in older configs means off."""
    in_cluster_plaintext: list[str] = Field(default_factory=list)
    """Ids of self-hosted models that may receive regulated requests over plain HTTP (the
    policy's allowInClusterPlaintext, keeping only models whose NetworkPolicy the operator
    renders); absent in older configs: none."""


class Cache(ConfigModel):
    enabled: bool
    ttl_seconds: int
    temperature_zero_only: bool


class Retention(ConfigModel):
    """Days audit records are kept: per framework (every framework, the policy's overrides
    applied to the platform defaults) and for tenants under none."""

    default_days: int = DEFAULT_RETENTION_DAYS
    frameworks: dict[str, int] = Field(default_factory=lambda: dict(RETENTION_DAYS))


class PolicyEntry(ConfigModel):
    id: str
    namespace: str
    name: str
    default: bool
    default_tier: str
    tiers: list[TierEntry]
    fallback: Fallback
    scoring: Scoring
    timeouts: Timeouts
    circuit_breaker: CircuitBreaker
    data_governance: DataGovernance
    cache: Cache
    retention: Retention = Field(default_factory=Retention)
    """Absent in older configs: the platform defaults."""


class Limits(ConfigModel):
    """None means unlimited."""

    requests_per_minute: int | None = None
    requests_per_hour: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    cost_per_month_usd: float | None = Field(None, alias="costPerMonthUSD")


class Compliance(ConfigModel):
    frameworks: list[str]
    region: str | None


class KeyEntry(ConfigModel):
    name: str
    user: str
    role: str
    sha256: str
    """Hex SHA-256 of the key (see `llmplatform.contract.keys.hash_api_key`)."""
    trust_client_user: bool = False
    """Per-user limits key on the request's `user` field instead of `user` (a service key
    fronting many end users); absent (older operators): False."""


class TenantEntry(ConfigModel):
    id: str
    namespace: str
    name: str
    organization: str
    policy: str
    allowed_tiers: list[str]
    limits: Limits
    user_limits: Limits | None
    compliance: Compliance
    keys: list[KeyEntry]


class GatewayConfig(ConfigModel):
    """Everything the gateway enforces. Lists are sorted by id (tiers and their models keep
    the policy's order, which is meaningful)."""

    schema_version: int = SCHEMA_VERSION
    content_hash: str = ""
    default_policy: str | None
    models: list[ModelEntry]
    policies: list[PolicyEntry]
    tenants: list[TenantEntry]


class UnsupportedSchemaVersion(ValueError):
    """The config was written for a schemaVersion (or, sharded, a shardFormat) this code does
    not understand."""

    reason = "unsupported_version"
    """The `llmplatform_config_rejected_total` reason the gateway counts it under."""


def canonical_json(data: Any) -> str:
    """The canonical JSON the content hash is taken over (and large configs are written as):
    sorted keys, no spaces, no NaN: the one serialization every hash is taken over."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _hash_body(body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k != "contentHash"}
    return hashlib.sha256(canonical_json(rest).encode("utf-8")).hexdigest()


def content_hash(config: GatewayConfig) -> str:
    """Hex SHA-256 of the canonical JSON (sorted keys, no spaces) of everything except
    contentHash itself."""
    return _hash_body(config.model_dump(mode="json", by_alias=True))


def seal(config: GatewayConfig) -> GatewayConfig:
    """The config with its contentHash filled in."""
    return config.model_copy(update={"content_hash": content_hash(config)})


def dump_config(config: GatewayConfig) -> str:
    """The ConfigMap's `config.json`: sorted keys, trailing newline; identical configs give
    identical bytes. Configs that stay inline get a two-space indent (reviewable in GitOps
    diffs); larger ones, which are stored gzipped anyway, stay compact, because Python's JSON
    encoder is five times slower with indent and this runs on every reconcile pass."""
    body = config.model_dump(mode="json", by_alias=True)
    compact = canonical_json(body) + "\n"
    if len(compact) > INLINE_LIMIT // 2:
        return compact
    return json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def compress_config(text: str) -> bytes:
    """gzip of the config text with a zero timestamp, so equal configs give equal bytes."""
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def read_config_file(path: str | Path) -> GatewayConfig:
    """Load the config from a file, or from the folder a mounted ConfigMap becomes (which holds
    either `config.json` or, for large configs, `config.json.gz`)."""
    p = Path(path)
    if p.is_dir():
        for key in (CONFIG_KEY, CONFIG_GZ_KEY):
            if (p / key).is_file():
                p = p / key
                break
        else:
            raise FileNotFoundError(f"{path} holds neither {CONFIG_KEY} nor {CONFIG_GZ_KEY}")
    return load_config(p.read_bytes())


def load_config(text: str | bytes) -> GatewayConfig:
    """Parse `config.json` as the gateway mounts it (plain, or gzip-compressed bytes).

    Raises UnsupportedSchemaVersion for an unknown schemaVersion (the caller keeps its previous
    config) and ValueError when contentHash does not match the content (a torn or edited file).
    """
    if isinstance(text, bytes) and text.startswith(GZIP_MAGIC):
        text = gzip.decompress(text)
    raw = json.loads(text)
    version = raw.get("schemaVersion") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise UnsupportedSchemaVersion(f"gateway config schemaVersion {version!r} is not {SCHEMA_VERSION}")
    # Hash the raw document, so fields added by a newer operator (ignored below) still count.
    if raw.get("contentHash") != _hash_body(raw):
        raise ValueError(f"gateway config contentHash {raw.get('contentHash')!r} does not match its content")
    return GatewayConfig.model_validate(raw)
