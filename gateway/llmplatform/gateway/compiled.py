"""The gateway config compiled once per (re)load into the lookups the hot path needs.

Why compile: the style guide asks that a request costs a few dict lookups. Everything that can
be decided from the config alone (key hash -> tenant, policy -> tiers -> models, model name ->
model, per-token prices, retry conditions, upstream URLs and credentials) is resolved here, at
load time, and the result is immutable, so a reload swaps one reference and in-flight requests
keep the snapshot they started with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from llmplatform.contract.config import (
    GatewayConfig,
    Limits,
    ModelEntry,
    PolicyEntry,
    Retention,
    SecretResolver,
)
from llmplatform.contract.names import (
    DEFAULT_RETENTION_DAYS,
    PROVIDER_SECRETS_VALUE,
    REGULATED_TRANSIT_FRAMEWORKS,
)
from llmplatform.gateway.cache import CacheSettings
from llmplatform.gateway.clearance import RANK, PolicyGovernance, TenantGovernance, compile_policy
from llmplatform.gateway.providers import ADAPTERS, adapter_for
from llmplatform.gateway.providers.base import Adapter
from llmplatform.gateway.upstreamtls import DEFAULT, UpstreamTLS, for_bundle

log = logging.getLogger("llmplatform.gateway")
DAY_SECONDS = 86400


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    tier: str
    provider: str
    upstream_model: str
    urls: dict[str, str]
    api_key: str | None = field(repr=False)
    """Upstream credential; repr=False keeps it out of any log line that prints a Model."""
    capabilities: frozenset[str]
    context_window: int
    max_output_tokens: int | None
    input_price: float
    """USD per token."""
    output_price: float
    prior_latency_ms: float
    prior_availability: float
    max_class: int = 1
    """Rank of maxDataClassification in clearance.CLASSES (0 public .. 3 restricted)."""
    region: str | None = None
    self_hosted: bool = False
    """Served by the platform (`LLMModel.spec.serving`), not by a provider's API."""
    credential_problem: str | None = None
    """Why the model cannot be called: its `apiKeySecretRef` names a credential this gateway
    cannot read (not mounted, or empty). Such a model is never called without its key: the
    fallback loop skips it (upstream.py) and /readyz and a metric report it (server.py). A
    model without `apiKeySecretRef` is keyless by declaration and has no problem."""
    tls: bool = True
    """Reached over TLS (the declared url is https://); plain models serve regulated requests
    only where the policy allows them in-cluster (governance.py)."""
    upstream_tls: UpstreamTLS = DEFAULT
    """aiohttp's `ssl=` for this model (upstreamtls.py: verification always on)."""

    @property
    def adapter(self) -> Adapter:
        """How to speak to the upstream (providers/); compiled models only have providers
        with an adapter."""
        return ADAPTERS[self.provider]

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return tokens_in * self.input_price + tokens_out * self.output_price


@dataclass(frozen=True)
class Policy:
    id: str
    default_tier: str
    tiers: dict[str, tuple[Model, ...]]
    """Tier name -> models in the policy's fallback order."""
    by_name: dict[str, Model]
    """Model name (and id) -> model, for models this policy routes to."""
    max_attempts: int
    retry_statuses: frozenset[int]
    retry_timeout: bool
    retry_connect: bool
    across_tiers: tuple[str, ...]
    weights: tuple[float, float, float, float]
    """availability, cost, latency, priority."""
    connect_seconds: float
    request_seconds: float
    stream_idle_seconds: float
    breaker_failures: int
    breaker_open_seconds: float
    governance: PolicyGovernance
    cache: CacheSettings
    retention: Retention = field(default_factory=Retention)


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    policy: Policy
    allowed_tiers: frozenset[str]
    limits: Limits
    user_limits: Limits | None
    governance: TenantGovernance
    retention_days: int = DEFAULT_RETENTION_DAYS
    """How long the tenant's audit records are kept (retention_days below)."""
    cache_ttl: int = 300
    """The policy's cache TTL, capped by the retention: no cached answer outlives it."""


@dataclass(frozen=True)
class Key:
    sha256: str
    name: str
    user: str
    role: str
    tenant: Tenant
    trust_client_user: bool = False
    """Per-user limits key on the request's `user` field (see docs/gateway.md)."""


@dataclass(frozen=True)
class Compiled:
    content_hash: str
    keys: dict[str, Key]
    models: dict[str, Model]
    """By id and by name (a name shared across namespaces maps to the first id)."""
    tenants: dict[str, Tenant]
    credentials_missing: dict[str, Model] = field(default_factory=dict)
    """By id: models whose credential cannot be read (see `Model.credential_problem`)."""
    default_retention_days: int = DEFAULT_RETENTION_DAYS
    """Retention of records that belong to no tenant: the default policy's defaultDays."""


def retention_days(retention: Retention, frameworks: list[str]) -> int:
    """A tenant's retention: the longest period of its frameworks, or the policy's default
    when it declares none (a framework the config has no period for counts as the default)."""
    if not frameworks:
        return retention.default_days
    return max(retention.frameworks.get(f, retention.default_days) for f in frameworks)


def _model(entry: ModelEntry, adapter: Adapter, secrets: SecretResolver) -> Model:
    api_key = None
    problem = None
    if entry.api_key_secret_ref is not None:
        ref = entry.api_key_secret_ref
        raw = secrets(ref.namespace, ref.name, ref.key)
        api_key = raw.decode("utf-8", "replace").strip() if raw is not None else None
        if not api_key:
            api_key = None
            problem = (
                f"the gateway cannot read the upstream credential of model '{entry.name}' (key "
                f"{ref.key!r} of Secret {ref.namespace}/{ref.name}"
                f"{' is empty' if raw is not None else ' is not mounted'}): the platform team must "
                f"mount it into the gateway (chart value {PROVIDER_SECRETS_VALUE})"
            )
    upstream_tls = DEFAULT
    if entry.ca_bundle_secret_ref is not None:
        ca = entry.ca_bundle_secret_ref
        upstream_tls = for_bundle(
            secrets(ca.namespace, ca.name, ca.key), f"Secret {ca.namespace}/{ca.name} key {ca.key!r}"
        )
        if upstream_tls.error is not None:
            log.error("model %s: %s; requests skip it", entry.id, upstream_tls.error)
    base = entry.url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"  # an endpoint given as the server root (https://api.example.com)
    urls, capabilities = adapter.endpoints(base, frozenset(entry.capabilities))
    return Model(
        id=entry.id,
        name=entry.name,
        tier=entry.tier,
        provider=entry.provider,
        upstream_model=entry.upstream_model,
        urls=urls,
        api_key=api_key,
        capabilities=capabilities,
        context_window=entry.context_window,
        max_output_tokens=entry.max_output_tokens,
        input_price=entry.pricing.input_per_million_tokens / 1e6,
        output_price=entry.pricing.output_per_million_tokens / 1e6,
        prior_latency_ms=float(entry.priors.expected_latency_ms or 1000),
        prior_availability=float(
            entry.priors.availability if entry.priors.availability is not None else 0.99
        ),
        max_class=RANK[entry.max_data_classification],
        region=entry.region,
        self_hosted=entry.self_hosted,
        credential_problem=problem,
        tls=entry.tls if entry.tls is not None else entry.url.startswith("https://"),
        upstream_tls=upstream_tls,
    )


def _policy(entry: PolicyEntry, models: dict[str, Model]) -> Policy:
    tiers = {t.name: tuple(models[m] for m in t.models if m in models) for t in entry.tiers}
    by_name: dict[str, Model] = {}
    for tier_models in tiers.values():
        for model in tier_models:
            by_name.setdefault(model.name, model)
            by_name[model.id] = model
    retry = entry.fallback.retry_on
    return Policy(
        id=entry.id,
        default_tier=entry.default_tier,
        tiers=tiers,
        by_name=by_name,
        max_attempts=entry.fallback.max_attempts,
        retry_statuses=frozenset(r for r in retry if isinstance(r, int)),
        retry_timeout="timeout" in retry,
        retry_connect="connect" in retry,
        across_tiers=tuple(entry.fallback.across_tiers),
        weights=(
            entry.scoring.availability,
            entry.scoring.cost,
            entry.scoring.latency,
            entry.scoring.priority,
        ),
        connect_seconds=entry.timeouts.connect_seconds,
        request_seconds=entry.timeouts.request_seconds,
        stream_idle_seconds=entry.timeouts.stream_idle_seconds,
        breaker_failures=entry.circuit_breaker.consecutive_failures,
        breaker_open_seconds=entry.circuit_breaker.open_seconds,
        governance=compile_policy(entry.data_governance),
        cache=CacheSettings(
            enabled=entry.cache.enabled,
            ttl_seconds=entry.cache.ttl_seconds,
            temperature_zero_only=entry.cache.temperature_zero_only,
        ),
        retention=entry.retention,
    )


def compile_config(config: GatewayConfig, secrets: SecretResolver) -> Compiled:
    models_by_id = {
        e.id: _model(e, adapter, secrets)
        for e in config.models
        if (adapter := adapter_for(e.provider)) is not None  # others are left out of routing
    }
    policies = {p.id: _policy(p, models_by_id) for p in config.policies}
    tenants: dict[str, Tenant] = {}
    keys: dict[str, Key] = {}
    for t in config.tenants:
        policy = policies.get(t.policy) or (policies.get(config.default_policy or ""))
        if policy is None:
            continue  # a tenant whose policy is gone cannot be served; the operator reports it
        days = retention_days(policy.retention, t.compliance.frameworks)
        tenant = Tenant(
            id=t.id,
            name=t.name,
            policy=policy,
            allowed_tiers=frozenset(t.allowed_tiers),
            limits=t.limits,
            user_limits=t.user_limits,
            governance=TenantGovernance(
                hipaa="hipaa" in t.compliance.frameworks,
                gdpr="gdpr" in t.compliance.frameworks,
                region=t.compliance.region,
                encrypted_transit=bool(REGULATED_TRANSIT_FRAMEWORKS.intersection(t.compliance.frameworks)),
            ),
            retention_days=days,
            cache_ttl=min(policy.cache.ttl_seconds, days * DAY_SECONDS),
        )
        tenants[t.id] = tenant
        for k in t.keys:
            keys[k.sha256] = Key(
                sha256=k.sha256,
                name=k.name,
                user=k.user,
                role=k.role,
                tenant=tenant,
                trust_client_user=k.trust_client_user,
            )
    models: dict[str, Model] = dict(models_by_id)
    for m in models_by_id.values():
        models.setdefault(m.name, m)
    default = policies.get(config.default_policy or "")
    return Compiled(
        content_hash=config.content_hash,
        keys=keys,
        models=models,
        tenants=tenants,
        credentials_missing={i: m for i, m in models_by_id.items() if m.credential_problem},
        default_retention_days=default.retention.default_days if default else DEFAULT_RETENTION_DAYS,
    )
