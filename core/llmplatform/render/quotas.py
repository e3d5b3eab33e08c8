"""TenantQuota rules: admission against the policy's ceilings, the grant, keys, the tenant.

Why the previous grant survives a rejected request: a tenant who asks for too much by mistake
must not lose the capacity they already had. `status.granted` is only ever written from an
admitted request, so it is the record of the last admitted grant, and it stays in force until a
valid request replaces it. A quota with neither an admitted request nor an earlier grant is
left out of the gateway config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmplatform.api.common import LIMIT_FIELDS, TIERS, Limits
from llmplatform.api.routingpolicy import RoutingPolicy
from llmplatform.api.tenantquota import GENERATED_KEY_DATA_KEY, TenantQuota
from llmplatform.contract import config as gc
from llmplatform.render.inputs import Invalid, Parsed
from llmplatform.render.secrets import SecretStore, hash_api_key
from llmplatform.render.verdicts import ApiKeySecretVerdict, ConditionVerdict, QuotaVerdict


@dataclass(frozen=True)
class QuotaOutcome:
    verdict: QuotaVerdict
    tenant: gc.TenantEntry | None


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
    policy: Parsed[RoutingPolicy],
    granted: Mapping[str, Any],
    keys: list[gc.KeyEntry],
) -> gc.TenantEntry:
    spec = parsed.resource.spec
    policy_tiers = [t.name for t in policy.resource.spec.tiers]
    wanted = set(spec.allowed_tiers) if spec.allowed_tiers is not None else set(policy_tiers)
    return gc.TenantEntry(
        id=parsed.id,
        namespace=parsed.namespace,
        name=parsed.name,
        organization=spec.organization or parsed.namespace,
        policy=policy.id,
        allowed_tiers=[t for t in TIERS if t in wanted and t in policy_tiers],
        limits=config_limits(Limits.model_validate(dict(granted))),
        user_limits=config_limits(spec.user_limits) if spec.user_limits else None,
        compliance=gc.Compliance(
            frameworks=sorted(spec.compliance.frameworks or []) if spec.compliance else [],
            region=spec.compliance.region if spec.compliance else None,
        ),
        keys=keys,
    )


def resolve_quota(
    parsed: Parsed[TenantQuota],
    policies: Mapping[str, Parsed[RoutingPolicy]],
    default_id: str | None,
    secrets: SecretStore,
    platform_namespace: str,
    invalid_policies: frozenset[str] = frozenset(),
) -> QuotaOutcome:
    spec = parsed.resource.spec
    key_verdicts, key_entries = _keys(parsed, secrets)
    previous = _previous_grant(parsed.resource)
    policy_id = _policy_id(parsed, platform_namespace, default_id)
    policy = policies.get(policy_id) if policy_id else None

    if policy is None:
        if not policy_id:
            what = "no RoutingPolicy is named and none is the default"
        elif policy_id in invalid_policies:
            what = f"RoutingPolicy {policy_id} is invalid (see its status)"
        else:
            what = f"RoutingPolicy {policy_id} not found"
        approved = ConditionVerdict("Approved", "False", "PolicyNotFound", what)
        verdict = QuotaVerdict(
            namespace=parsed.namespace,
            name=parsed.name,
            policy=policy_id,
            approved=approved,
            ready=ConditionVerdict("Ready", "False", "PolicyNotFound", f"{what}; not in the gateway config"),
            granted=previous,
            in_config=False,
            api_key_secrets=tuple(key_verdicts),
        )
        return QuotaOutcome(verdict, None)

    ceilings = policy.resource.spec.tenant_ceilings
    policy_tiers = {t.name for t in policy.resource.spec.tiers}
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

    granted = effective_grant(spec.limits, ceilings) if approved.status == "True" else previous
    pending = [k for k in key_verdicts if not k.present]
    if granted is None:
        ready = ConditionVerdict(
            "Ready", "False", "NotAdmitted", "not admitted and no earlier grant; not in the gateway config"
        )
    elif pending:
        ready = ConditionVerdict(
            "Ready",
            "False",
            "KeysPending",
            "waiting for API key Secret(s): "
            + ", ".join(f"{k.secret_name}[{k.secret_key}]" for k in pending),
        )
    elif approved.status == "True":
        ready = ConditionVerdict("Ready", "True", "Configured", "in the gateway config")
    else:
        ready = ConditionVerdict(
            "Ready", "True", "PreviousGrantInForce", "in the gateway config with the earlier admitted grant"
        )
    tenant = _tenant(parsed, policy, granted, key_entries) if granted is not None else None
    verdict = QuotaVerdict(
        namespace=parsed.namespace,
        name=parsed.name,
        policy=policy.id,
        approved=approved,
        ready=ready,
        granted=granted,
        in_config=tenant is not None,
        api_key_secrets=tuple(key_verdicts),
    )
    return QuotaOutcome(verdict, tenant)


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
