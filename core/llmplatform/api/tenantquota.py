"""TenantQuota: a tenant's request for capacity and API keys, created in its own namespace.

Why requested and granted are separate types/fields (Kueue's habit): `spec.limits` is what the
tenant asked for, `status.granted` is what the gateway enforces. A request above the policy's
ceilings is not admitted, and the previous grant stays in force until a valid request arrives.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from llmplatform.api.base import K8sModel, LenientModel, list_map, list_set
from llmplatform.api.cel import CelRule
from llmplatform.api.common import Condition, DnsLabel, DnsSubdomain, Limits, ObjectMeta, SecretKeyRef, Tier
from llmplatform.contract.names import Framework as Framework

Role = Literal["admin", "data_scientist", "business_user", "readonly"]

# A generated key lives in the Secret `<quota>-<key name>`; its value is under this data key.
GENERATED_KEY_DATA_KEY = "api-key"


class PolicyRef(K8sModel):
    """Reference to a RoutingPolicy."""

    name: DnsSubdomain
    """Name of the RoutingPolicy."""
    namespace: Annotated[str, StringConstraints(min_length=1, max_length=63)] | None = None
    """Namespace of the RoutingPolicy; defaults to the platform namespace."""


class Compliance(K8sModel):
    """Regulatory constraints on how the tenant's requests are handled."""

    frameworks: list[Framework] | None = Field(None, max_length=5, json_schema_extra=list_set())
    """Compliance frameworks that apply: gdpr, hipaa, sox, pci_dss, soc2."""
    region: Annotated[str, StringConstraints(min_length=1, max_length=63)] | None = None
    """Only models in this region may serve the tenant (e.g. EU)."""


class ApiKey(K8sModel):
    """An API key of the tenant, mapped to an end user and a role."""

    name: DnsLabel
    """Key name, unique in the quota; a generated key is stored in the Secret <quota>-<name>."""
    user: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    """End user the key belongs to (per-user limits and audit)."""
    trust_client_user: bool | None = None
    """Key per-user limits (userLimits) and the audit's user on the request's `user` field
    instead of this key's user: for a service key that fronts many end users. Off by default,
    because a caller can put anything in `user`; the tenant's own limits apply either way."""
    role: Role
    """What the key may do: admin, data_scientist, business_user, readonly."""
    secret_ref: SecretKeyRef | None = None
    """Read the key from this Secret (managed in Git with sealed or external secrets)
    instead of letting the operator generate one."""


class TenantQuotaSpec(K8sModel):
    """Desired state of a TenantQuota: the capacity a tenant asks for."""

    organization: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = None
    """Organization the tenant belongs to, for reporting; defaults to the namespace."""
    routing_policy: PolicyRef | None = None
    """RoutingPolicy the tenant's requests follow; defaults to the default policy."""
    allowed_tiers: list[Tier] | None = Field(None, max_length=4, json_schema_extra=list_set())
    """Tiers the tenant may use; absent: every tier of the policy."""
    limits: Limits | None = None
    """Requested limits for the whole tenant; absent fields mean "up to the policy's ceiling"."""
    user_limits: Limits | None = None
    """Limits applied to each end user: the key's user, or the request's `user` field for a key
    with trustClientUser."""
    compliance: Compliance | None = None
    """Compliance frameworks and residency."""
    api_keys: list[ApiKey] | None = Field(None, max_length=32, json_schema_extra=list_map("name"))
    """API keys of the tenant; names are unique."""


DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


class Usage(LenientModel):
    """Consumption the gateway reports, refreshed at least every 60 seconds."""

    requests_this_minute: int | None = Field(None, ge=0)
    """Requests in the current minute."""
    tokens_today: int | None = Field(None, ge=0)
    """Tokens used today (UTC)."""
    cost_this_month_usd: float | None = Field(None, ge=0, alias="costThisMonthUSD")
    """Spend this month (UTC) in US dollars."""
    day: Annotated[str, StringConstraints(max_length=10, pattern=DAY_PATTERN)] | None = None
    """The UTC day (YYYY-MM-DD) these counters were read in: tokensToday counts this day and
    costThisMonthUSD its month. The operator restores them into Redis from here when Redis has
    lost them (a restart without persistence)."""


class ApiKeySecretStatus(LenientModel):
    """Where one API key of the quota lives."""

    name: Annotated[str, StringConstraints(max_length=63)]
    """The key's name in spec.apiKeys."""
    secret_name: Annotated[str, StringConstraints(max_length=253)]
    """Secret in the quota's namespace holding the key."""
    key: Annotated[str, StringConstraints(max_length=253)]
    """Data key inside the Secret."""


class TenantQuotaStatus(LenientModel):
    """Observed state of a TenantQuota, written by the operator."""

    conditions: list[Condition] | None = Field(None, max_length=16, json_schema_extra=list_map("type"))
    """Approved (within the policy's ceilings) and Ready (in the gateway config with keys)."""
    observed_generation: int | None = Field(None, ge=0)
    """The metadata.generation last processed by the operator."""
    granted: Limits | None = None
    """The limits the gateway enforces (the last admitted request)."""
    usage: Usage | None = None
    """Current consumption."""
    api_key_secrets: list[ApiKeySecretStatus] | None = Field(
        None, max_length=32, json_schema_extra=list_map("name")
    )
    """Secrets holding the tenant's API keys."""


class TenantQuota(K8sModel):
    """TenantQuota is a tenant's request for capacity and API keys; the operator admits it
    against its RoutingPolicy's ceilings and hands the keys back as Secrets."""

    cel_rules = (
        CelRule(
            rule=(
                "!has(self.spec.apiKeys) || self.spec.apiKeys.all(k, has(k.secretRef) || "
                "self.metadata.name.size() + k.name.size() < 253)"
            ),
            message="a generated key's Secret <quota>-<key name> must be at most 253 characters",
            reason="FieldValueInvalid",
        ),
    )

    api_version: Literal["llmplatform.io/v1alpha1"] = "llmplatform.io/v1alpha1"
    kind: Literal["TenantQuota"] = "TenantQuota"
    metadata: ObjectMeta
    spec: TenantQuotaSpec
    status: TenantQuotaStatus | None = None
