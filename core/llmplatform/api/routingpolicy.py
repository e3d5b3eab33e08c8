"""RoutingPolicy: how requests pick and fall back between models, and the tenants' ceilings.

Why the cross-field rules are CEL: a policy whose defaultTier or acrossTiers names a tier it
does not define would only fail at request time; rejecting it at `kubectl apply` (and in the
offline loaders, which evaluate the same rules) puts the error in front of the person who
wrote it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, WithJsonSchema

from llmplatform.api.base import INT_OR_STRING, K8sModel, LenientModel, defaulted, list_map, list_set
from llmplatform.api.cel import CelRule
from llmplatform.api.common import (
    CLASSIFICATIONS,
    TIERS,
    Condition,
    DataClassification,
    DnsSubdomain,
    Limits,
    ObjectMeta,
    Tier,
)
from llmplatform.contract.names import DEFAULT_RETENTION_DAYS, FRAMEWORKS, Framework

DEFAULT_RETRY_ON: tuple[int | str, ...] = (429, 500, 502, 503, 504, "timeout", "connect")

RetryCondition = Annotated[
    int | str,
    WithJsonSchema(
        {
            INT_OR_STRING: True,
            "description": "An HTTP status code (400-599) or the word timeout or connect.",
        }
    ),
]


class TierRoute(K8sModel):
    """One tier of the policy and the models that serve it."""

    cel_rules = (
        CelRule(
            rule="self.models.all(m, self.models.exists_one(n, n == m))",
            message="a tier must not list the same model twice",
            field_path=".models",
            reason="FieldValueDuplicate",
        ),
    )

    name: Tier
    """Tier name; requests may name it as their model."""
    models: list[DnsSubdomain] = Field(min_length=1, max_length=32)
    """LLMModel names in the policy's namespace, in fallback order."""


class Fallback(K8sModel):
    """What happens when a model fails."""

    cel_rules = (
        CelRule(
            rule=(
                "self.retryOn.all(r, type(r) == int ? (r >= 400 && r <= 599) "
                ": (r == 'timeout' || r == 'connect'))"
            ),
            message="retryOn entries must be HTTP status codes 400-599 (unquoted) or 'timeout' or 'connect'",
            field_path=".retryOn",
            reason="FieldValueInvalid",
        ),
    )

    max_attempts: int = Field(3, ge=1, le=10)
    """Most upstream attempts per request, across models and tiers."""
    retry_on: list[RetryCondition] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_ON),
        max_length=16,
        json_schema_extra={"default": list(DEFAULT_RETRY_ON)},
    )
    """Failures that move on to the next model: status codes, timeout, connect."""
    across_tiers: list[Tier] = Field(
        default_factory=list, max_length=4, json_schema_extra={**list_set(), "default": []}
    )
    """Tiers to continue into, in order, when the requested tier is exhausted."""


class Scoring(K8sModel):
    """Weights of the model-scoring function; models whose context window cannot hold the
    prompt plus max_tokens are skipped before scoring."""

    cel_rules = (
        CelRule(
            rule="self.availability + self.cost + self.latency + self.priority > 0.0",
            message="at least one scoring weight must be positive",
            reason="FieldValueInvalid",
        ),
    )

    availability: float = Field(0.4, ge=0, le=1)
    """Weight of the observed (or prior) success rate."""
    cost: float = Field(0.3, ge=0, le=1)
    """Weight of cheapness."""
    latency: float = Field(0.2, ge=0, le=1)
    """Weight of speed."""
    priority: float = Field(0.1, ge=0, le=1)
    """Weight of the position in the tier's model list."""


class Timeouts(K8sModel):
    """Upstream timeouts."""

    connect_seconds: float = Field(5.0, gt=0, le=600)
    """Time allowed to open a connection."""
    request_seconds: float = Field(120.0, gt=0, le=3600)
    """Time allowed for a whole non-streamed response."""
    stream_idle_seconds: float = Field(60.0, gt=0, le=3600)
    """Longest gap allowed between two chunks of a streamed response."""


class CircuitBreaker(K8sModel):
    """Per-model circuit breaker: stop sending to a model that keeps failing."""

    consecutive_failures: int = Field(5, ge=1, le=1000)
    """Failures in a row that open the breaker."""
    open_seconds: float = Field(30.0, gt=0, le=3600)
    """How long the breaker stays open before a trial request."""


class ClassificationRule(K8sModel):
    """Routing restrictions for requests carrying data of one classification."""

    classification: DataClassification
    """Data classification the rule applies to."""
    allowed_tiers: list[Tier] | None = Field(None, max_length=4, json_schema_extra=list_set())
    """Only these tiers may serve such requests (absent: any)."""
    allowed_regions: list[Annotated[str, StringConstraints(min_length=1, max_length=63)]] | None = Field(
        None, max_length=32, json_schema_extra=list_set()
    )
    """Only models in these regions may serve such requests (absent: any)."""
    pii_redaction: bool | None = None
    """Overrides dataGovernance.piiRedaction for such requests."""


class DataGovernance(K8sModel):
    """Data protection applied before a prompt leaves the platform."""

    pii_redaction: bool = True
    """Redact personal data (e-mail addresses, phone and card numbers...) from prompts."""
    rules: list[ClassificationRule] | None = Field(
        None, max_length=len(CLASSIFICATIONS), json_schema_extra=list_map("classification")
    )
    """Per-classification restrictions; a model never receives data above its
    maxDataClassification regardless of these rules."""
    output_scanning: bool = False
    """Also scan model responses (JSON and streams) and redact personal data in them before
    they reach the client; off by default because it costs a scan of every generated chunk."""
    allow_in_cluster_plaintext: list[DnsSubdomain] | None = Field(
        None, max_length=32, json_schema_extra=list_set()
    )
    """Self-hosted models (spec.serving) of this policy that may receive regulated requests
    (classified restricted, or from tenants under hipaa or pci_dss) over plain HTTP inside the
    cluster, where the NetworkPolicy the operator renders admits only gateway pods. Without
    this, such requests go only to models reached over TLS. A model with an http:// endpoint
    never qualifies (nothing the platform renders protects its traffic)."""


class Cache(K8sModel):
    """Exact-match response cache."""

    enabled: bool = False
    """Serve repeated identical requests from the cache."""
    ttl_seconds: int = Field(300, ge=1, le=604800)
    """How long a cached response is served."""
    temperature_zero_only: bool = True
    """Cache only requests with temperature 0 (deterministic sampling)."""


class FrameworkRetention(K8sModel):
    """How long records of tenants under one compliance framework are kept."""

    framework: Framework
    """gdpr, hipaa, sox, pci_dss or soc2."""
    days: int = Field(ge=1, le=36500)
    """Days an audit record is kept after it is written (1 to 36500)."""


class Retention(K8sModel):
    """How long the gateway keeps what it records about requests (its audit files; cached
    responses never outlive it either). A tenant's retention is the longest one of its
    compliance frameworks, or defaultDays when it declares none. Platform defaults (days):
    gdpr 90, hipaa 2557, sox 2557, pci_dss 365, soc2 365; see docs/security.md."""

    default_days: int = Field(DEFAULT_RETENTION_DAYS, ge=1, le=36500)
    """Retention of tenants under no framework, and of records that belong to no tenant."""
    frameworks: list[FrameworkRetention] | None = Field(
        None, max_length=len(FRAMEWORKS), json_schema_extra=list_map("framework")
    )
    """Overrides of the platform's default period for some frameworks."""


class RoutingPolicySpec(K8sModel):
    """Desired state of a RoutingPolicy."""

    cel_rules = (
        CelRule(
            rule="!has(self.defaultTier) || self.tiers.exists(t, t.name == self.defaultTier)",
            message="defaultTier must be the name of one of the tiers",
            field_path=".defaultTier",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule=(
                "!has(self.dataGovernance.allowInClusterPlaintext) || self.dataGovernance."
                "allowInClusterPlaintext.all(n, self.tiers.exists(t, t.models.exists(m, m == n)))"
            ),
            message=(
                "every dataGovernance.allowInClusterPlaintext entry must be a model named in one of the tiers"
            ),
            field_path=".dataGovernance.allowInClusterPlaintext",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule="self.fallback.acrossTiers.all(n, self.tiers.exists(t, t.name == n))",
            message="every fallback.acrossTiers entry must be the name of one of the tiers",
            field_path=".fallback.acrossTiers",
            reason="FieldValueInvalid",
        ),
    )

    default: bool = False
    """This policy applies to TenantQuotas that name none (at most one policy should set it)."""
    default_tier: Tier | None = None
    """Tier used for model "auto"; defaults to the first tier."""
    tiers: list[TierRoute] = Field(min_length=1, max_length=len(TIERS), json_schema_extra=list_map("name"))
    """Tiers and their models; tier names are unique."""
    fallback: Fallback = defaulted(Fallback)
    """Retry and fallback behaviour."""
    scoring: Scoring = defaulted(Scoring)
    """Model-scoring weights (default 0.4 / 0.3 / 0.2 / 0.1)."""
    timeouts: Timeouts = defaulted(Timeouts)
    """Upstream timeouts."""
    circuit_breaker: CircuitBreaker = defaulted(CircuitBreaker)
    """Per-model circuit breaker."""
    data_governance: DataGovernance = defaulted(DataGovernance)
    """PII redaction and per-classification routing rules."""
    cache: Cache = defaulted(Cache)
    """Response cache."""
    tenant_ceilings: Limits | None = None
    """The most any one TenantQuota under this policy may be granted."""
    retention: Retention = defaulted(Retention)
    """How long records of the policy's tenants are kept, by compliance framework."""


class RoutingPolicyStatus(LenientModel):
    """Observed state of a RoutingPolicy, written by the operator."""

    conditions: list[Condition] | None = Field(None, max_length=16, json_schema_extra=list_map("type"))
    """Current observations; Ready=False names any missing LLMModel."""
    observed_generation: int | None = Field(None, ge=0)
    """The metadata.generation last processed by the operator."""


class RoutingPolicy(K8sModel):
    """RoutingPolicy says how requests pick and fall back between models, and caps what
    TenantQuotas under it may be granted; owned by the platform team."""

    api_version: Literal["llmplatform.io/v1alpha1"] = "llmplatform.io/v1alpha1"
    kind: Literal["RoutingPolicy"] = "RoutingPolicy"
    metadata: ObjectMeta
    spec: RoutingPolicySpec
    status: RoutingPolicyStatus | None = None
