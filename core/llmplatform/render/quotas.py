"""TenantQuota rules: admission against the policy's ceilings, the grant, keys, the tenant.

Why the previous grant survives a rejected request: a tenant who asks for too much by mistake
must not lose the capacity they already had. `status.granted` is only ever written from an
admitted request, so it is the record of the last admitted grant, and it stays in force until a
valid request replaces it. A quota with neither an admitted request nor an earlier grant is
left out of the gateway config.

Why losing the policy keeps the grant too: `default: false` on the only RoutingPolicy, or a
renamed or broken policy, is a GitOps typo on the platform side; dropping every tenant at once
would turn it into an outage. The tenant keeps its earlier grant under the policy it was
rendered with, read from the gateway config in force (`previous`): the same policy if it still
exists (it only stopped being the default, or the quota now names a missing one), else that
policy's entry as last rendered, carried over unchanged except for models that are gone.

Why a quota that uses a provider credential is refused outright: a Secret an LLMModel reads as
its upstream key must never become a tenant key (whoever holds it could call the gateway as a
tenant), whatever the quota's grant.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmplatform.api.common import LIMIT_FIELDS, TIERS, Limits
from llmplatform.api.llmmodel import LLMModel
from llmplatform.api.routingpolicy import RoutingPolicy
from llmplatform.api.tenantquota import GENERATED_KEY_DATA_KEY, TenantQuota
from llmplatform.contract import config as gc
from llmplatform.render.inputs import Invalid, Parsed
from llmplatform.render.secrets import GeneratedKey, SecretStore, hash_api_key
from llmplatform.render.verdicts import ApiKeySecretVerdict, ConditionVerdict, QuotaVerdict


@dataclass(frozen=True)
class QuotaOutcome:
    """`generated`: the key Secrets that should exist (only with a grant in force);
    `kept_policy`: a lost policy's last entry the tenant stays under."""

    verdict: QuotaVerdict
    tenant: gc.TenantEntry | None
    generated: tuple[GeneratedKey, ...] = ()
    kept_policy: gc.PolicyEntry | None = None


def generated_secret_name(quota_name: str, key_name: str) -> str:
    """The Secret the operator writes a generated key to."""
    return f"{quota_name}-{key_name}"


def over_ceiling(limits: Limits | None, ceilings: Limits | None) -> list[str]:
    """Each requested limit above its ceiling, as `field value > ceiling`."""
    if limits is None or ceilings is None:
        return []
    asked, cap = limits.to_wire(), ceilings.to_wire()
    return [
        f"limits.{f} {asked[f]} > ceiling {cap[f]}"
        for f in LIMIT_FIELDS
        if f in asked and f in cap and asked[f] > cap[f]
    ]


def effective_grant(limits: Limits | None, ceilings: Limits | None) -> dict[str, Any]:
    """What an admitted request grants: each requested limit, or the ceiling where the request
    leaves the field out ("up to the ceiling"); fields absent from both stay unlimited."""
    asked = limits.to_wire() if limits else {}
    cap = ceilings.to_wire() if ceilings else {}
    return {f: asked.get(f, cap.get(f)) for f in LIMIT_FIELDS if f in asked or f in cap}


def config_limits(limits: Limits) -> gc.Limits:
    """The config form of limits (by field name, so no alias can silently drop a field)."""
    return gc.Limits(**limits.model_dump(by_alias=False))


def _previous_grant(quota: TenantQuota) -> dict[str, Any] | None:
    status = quota.status
    if status is None or status.granted is None:
        return None
    return status.granted.to_wire()


def _policy_id(quota: Parsed[TenantQuota], platform_namespace: str, default_id: str | None) -> str | None:
    ref = quota.resource.spec.routing_policy
    if ref is None:
        return default_id
    return f"{ref.namespace or platform_namespace}/{ref.name}"


@dataclass(frozen=True)
class ProviderCredentials:
    """Secrets LLMModels read as upstream keys, by reference and by value hash, with the ids
    of the models that read them (for the message)."""

    by_secret: Mapping[tuple[str, str], tuple[str, ...]]
    by_hash: Mapping[str, tuple[str, ...]]


NO_PROVIDERS = ProviderCredentials({}, {})


def provider_credentials(models: Mapping[str, Parsed[LLMModel]], secrets: SecretStore) -> ProviderCredentials:
    """Every Secret an LLMModel names as its upstream key (whether or not it exists yet)."""
    by_secret: dict[tuple[str, str], list[str]] = {}
    by_hash: dict[str, list[str]] = {}
    for model_id in sorted(models):
        parsed = models[model_id]
        endpoint = parsed.resource.spec.endpoint
        ref = endpoint.api_key_secret_ref if endpoint is not None else None
        if ref is None:
            continue
        by_secret.setdefault((parsed.namespace, ref.name), []).append(model_id)
        value = secrets.value(parsed.namespace, ref.name, ref.key)
        if value is not None and value.strip():
            by_hash.setdefault(hash_api_key(value), []).append(model_id)
    return ProviderCredentials(
        {k: tuple(v) for k, v in by_secret.items()}, {k: tuple(v) for k, v in by_hash.items()}
    )


def _provider_conflicts(
    keys: list[ApiKeySecretVerdict], entries: list[gc.KeyEntry], providers: ProviderCredentials
) -> list[str]:
    """Why each key that is (or equals) a provider credential is one."""
    out: list[str] = []
    named: set[str] = set()
    for key in keys:
        models = providers.by_secret.get((key.secret_namespace, key.secret_name))
        if models:
            named.add(key.name)
            out.append(
                f"API key {key.name} reads Secret {key.secret_namespace}/{key.secret_name}, the provider "
                f"credential of LLMModel {', '.join(models)}"
            )
    for entry in entries:
        models = providers.by_hash.get(entry.sha256)
        if models and entry.name not in named:
            out.append(
                f"API key {entry.name} has the value of the provider credential of LLMModel "
                + ", ".join(models)
            )
    return out


def _generated(parsed: Parsed[TenantQuota], keys: list[ApiKeySecretVerdict]) -> tuple[GeneratedKey, ...]:
    return tuple(
        GeneratedKey(parsed.namespace, k.secret_name, parsed.name, parsed.resource.metadata.uid, k.name)
        for k in keys
        if k.generated
    )


def _keys(
    parsed: Parsed[TenantQuota], secrets: SecretStore
) -> tuple[list[ApiKeySecretVerdict], list[gc.KeyEntry]]:
    verdicts: list[ApiKeySecretVerdict] = []
    entries: list[gc.KeyEntry] = []
    for key in sorted(parsed.resource.spec.api_keys or [], key=lambda k: k.name):
        if key.secret_ref is not None:
            secret_name, data_key, generated = key.secret_ref.name, key.secret_ref.key, False
        else:
            secret_name, data_key, generated = (
                generated_secret_name(parsed.name, key.name),
                GENERATED_KEY_DATA_KEY,
                True,
            )
        value = secrets.value(parsed.namespace, secret_name, data_key)
        present = value is not None and bool(value.strip())
        verdicts.append(
            ApiKeySecretVerdict(key.name, parsed.namespace, secret_name, data_key, generated, present)
        )
        if value is not None and present:
            entries.append(
                gc.KeyEntry(
                    name=key.name,
                    user=key.user,
                    role=key.role,
                    sha256=hash_api_key(value),
                    trust_client_user=bool(key.trust_client_user),
                )
            )
    return verdicts, entries


def _tenant(
    parsed: Parsed[TenantQuota],
    policy_id: str,
    policy_tiers: Sequence[str],
    granted: Mapping[str, Any],
    keys: list[gc.KeyEntry],
) -> gc.TenantEntry:
    spec = parsed.resource.spec
    wanted = set(spec.allowed_tiers) if spec.allowed_tiers is not None else set(policy_tiers)
    return gc.TenantEntry(
        id=parsed.id,
        namespace=parsed.namespace,
        name=parsed.name,
        organization=spec.organization or parsed.namespace,
        policy=policy_id,
        allowed_tiers=[t for t in TIERS if t in wanted and t in policy_tiers],
        limits=config_limits(Limits.model_validate(dict(granted))),
        user_limits=config_limits(spec.user_limits) if spec.user_limits else None,
        compliance=gc.Compliance(
            frameworks=sorted(spec.compliance.frameworks or []) if spec.compliance else [],
            region=spec.compliance.region if spec.compliance else None,
        ),
        keys=keys,
    )


def _ready(
    granted: Mapping[str, Any] | None, keys: list[ApiKeySecretVerdict], current: str
) -> ConditionVerdict:
    """Ready for a quota with a policy: `current` is the message when an earlier grant (not
    the request) is what the gateway enforces, or "" when the request was admitted."""
    pending = [k for k in keys if not k.present]
    if granted is None:
        return ConditionVerdict(
            "Ready", "False", "NotAdmitted", "not admitted and no earlier grant; not in the gateway config"
        )
    if pending:
        return ConditionVerdict(
            "Ready",
            "False",
            "KeysPending",
            "waiting for API key Secret(s): "
            + ", ".join(f"{k.secret_name}[{k.secret_key}]" for k in pending),
        )
    if not current:
        return ConditionVerdict("Ready", "True", "Configured", "in the gateway config")
    return ConditionVerdict("Ready", "True", "PreviousGrantInForce", current)


@dataclass(frozen=True)
class PreviousConfig:
    """The gateway config in force, as the lookups a quota that lost its policy makes: its own
    tenant entry and the entry of the policy it was rendered with (by id, not by scanning the
    config per quota)."""

    tenants: Mapping[str, gc.TenantEntry]
    policies: Mapping[str, gc.PolicyEntry]

    @classmethod
    def of(cls, config: gc.GatewayConfig | None) -> PreviousConfig | None:
        if config is None:
            return None
        tenants: dict[str, gc.TenantEntry] = {}
        policies: dict[str, gc.PolicyEntry] = {}
        for tenant in config.tenants:
            tenants.setdefault(tenant.id, tenant)
        for policy in config.policies:
            policies.setdefault(policy.id, policy)
        return cls(tenants, policies)


@dataclass(frozen=True)
class _KeptPolicy:
    """The policy an earlier grant stays in force under, when the quota's policy is lost."""

    id: str
    tiers: Sequence[str]
    entry: gc.PolicyEntry | None  # set when the policy is gone and its last entry is carried over


def _kept_policy(
    quota_id: str,
    policies: Mapping[str, Parsed[RoutingPolicy]],
    previous: PreviousConfig | None,
    usable_models: Container[str],
) -> _KeptPolicy | None:
    if previous is None:
        return None
    tenant = previous.tenants.get(quota_id)
    if tenant is None:
        return None
    live = policies.get(tenant.policy)
    if live is not None:
        return _KeptPolicy(live.id, [t.name for t in live.resource.spec.tiers], None)
    entry = previous.policies.get(tenant.policy)
    if entry is None:
        return None
    tiers = [
        t.model_copy(update={"models": [m for m in t.models if m in usable_models]}) for t in entry.tiers
    ]
    kept = entry.model_copy(update={"default": False, "tiers": tiers})
    return _KeptPolicy(entry.id, [t.name for t in entry.tiers], kept)


def resolve_quota(
    parsed: Parsed[TenantQuota],
    policies: Mapping[str, Parsed[RoutingPolicy]],
    default_id: str | None,
    secrets: SecretStore,
    platform_namespace: str,
    invalid_policies: Container[str] = frozenset(),
    *,
    providers: ProviderCredentials = NO_PROVIDERS,
    previous: PreviousConfig | None = None,
    usable_models: Container[str] = frozenset(),
) -> QuotaOutcome:
    """The quota's verdict and tenant entry. `previous` is the gateway config in force (the
    operator's last ConfigMap), used only to keep an earlier grant when the policy is lost.

    What it reads besides the quota is exactly its arguments, each only by looking up keys the
    quota leads to (its policy's id, its key Secrets, their references and hashes among the
    provider credentials, its own previous tenant entry): never by iterating one. The
    incremental renderer relies on that to know what a quota depends on."""
    spec = parsed.resource.spec
    key_verdicts, key_entries = _keys(parsed, secrets)
    previous_grant = _previous_grant(parsed.resource)
    policy_id = _policy_id(parsed, platform_namespace, default_id)
    policy = policies.get(policy_id) if policy_id else None

    def outcome(
        approved: ConditionVerdict,
        ready: ConditionVerdict,
        granted: dict[str, Any] | None,
        tenant: gc.TenantEntry | None,
        kept: gc.PolicyEntry | None = None,
    ) -> QuotaOutcome:
        verdict = QuotaVerdict(
            namespace=parsed.namespace,
            name=parsed.name,
            policy=tenant.policy if tenant is not None else policy_id,
            approved=approved,
            ready=ready,
            granted=granted,
            in_config=tenant is not None,
            api_key_secrets=tuple(key_verdicts),
        )
        generated = _generated(parsed, key_verdicts) if tenant is not None else ()
        return QuotaOutcome(verdict, tenant, generated, kept)

    conflicts = _provider_conflicts(key_verdicts, key_entries, providers)
    if conflicts:
        what = "; ".join(conflicts) + "; a provider credential can never be a tenant key"
        return outcome(
            ConditionVerdict("Approved", "False", "ProviderCredential", what),
            ConditionVerdict("Ready", "False", "ProviderCredential", f"{what}; not in the gateway config"),
            previous_grant,
            None,
        )

    if policy is None:
        if not policy_id:
            what = "no RoutingPolicy is named and none is the default"
        elif policy_id in invalid_policies:
            what = f"RoutingPolicy {policy_id} is invalid (see its status)"
        else:
            what = f"RoutingPolicy {policy_id} not found"
        kept = (
            _kept_policy(parsed.id, policies, previous, usable_models) if previous_grant is not None else None
        )
        if previous_grant is None or kept is None:
            return outcome(
                ConditionVerdict("Approved", "False", "PolicyNotFound", what),
                ConditionVerdict("Ready", "False", "PolicyNotFound", f"{what}; not in the gateway config"),
                previous_grant,
                None,
            )
        held = f"the earlier grant stays in force under RoutingPolicy {kept.id}"
        if kept.entry is not None:
            held += " as last rendered"
        return outcome(
            ConditionVerdict("Approved", "False", "PolicyNotFound", f"{what}; {held}"),
            _ready(previous_grant, key_verdicts, f"{what}; in the gateway config: {held}"),
            previous_grant,
            _tenant(parsed, kept.id, kept.tiers, previous_grant, key_entries),
            kept.entry,
        )

    ceilings = policy.resource.spec.tenant_ceilings
    policy_tiers = [t.name for t in policy.resource.spec.tiers]
    unknown_tiers = [t for t in spec.allowed_tiers or [] if t not in policy_tiers]
    overs = over_ceiling(spec.limits, ceilings)
    if unknown_tiers:
        approved = ConditionVerdict(
            "Approved",
            "False",
            "TierNotInPolicy",
            f"allowedTiers {', '.join(unknown_tiers)} not offered by RoutingPolicy {policy.id}",
        )
    elif overs:
        approved = ConditionVerdict(
            "Approved",
            "False",
            "ExceedsCeiling",
            f"{'; '.join(overs)} (tenantCeilings of RoutingPolicy {policy.id})",
        )
    else:
        approved = ConditionVerdict(
            "Approved", "True", "WithinCeilings", f"within the ceilings of {policy.id}"
        )

    admitted = approved.status == "True"
    granted = effective_grant(spec.limits, ceilings) if admitted else previous_grant
    ready = _ready(
        granted, key_verdicts, "" if admitted else "in the gateway config with the earlier admitted grant"
    )
    tenant = _tenant(parsed, policy.id, policy_tiers, granted, key_entries) if granted is not None else None
    return outcome(approved, ready, granted, tenant)


def invalid_quota(invalid: Invalid) -> QuotaVerdict:
    return QuotaVerdict(
        namespace=invalid.namespace,
        name=invalid.name,
        policy=None,
        approved=ConditionVerdict("Approved", "False", "InvalidSpec", invalid.error),
        ready=ConditionVerdict("Ready", "False", "InvalidSpec", invalid.error),
        granted=None,
        in_config=False,
    )
