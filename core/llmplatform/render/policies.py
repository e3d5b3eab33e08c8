"""RoutingPolicy rules: which policy is the default, which models are missing, the config entry.

Why a deterministic default: two policies marked `default: true` is a user error the API
server cannot catch (it spans objects). The oldest one (creationTimestamp, then
namespace/name) keeps the role, so adding a second default never silently moves tenants; the
newcomer reports the conflict in its Ready condition.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from llmplatform.api.llmmodel import LLMModel
from llmplatform.api.routingpolicy import RoutingPolicy
from llmplatform.contract import config as gc
from llmplatform.contract.names import RETENTION_DAYS
from llmplatform.render.inputs import Invalid, Parsed
from llmplatform.render.verdicts import ConditionVerdict, PolicyVerdict


@dataclass(frozen=True)
class PolicyOutcome:
    verdict: PolicyVerdict
    entry: gc.PolicyEntry | None


def default_policy(policies: Mapping[str, Parsed[RoutingPolicy]]) -> str | None:
    """Id of the policy that acts as the default, among valid ones with `default: true`."""
    candidates = [p for p in policies.values() if p.resource.spec.default]
    if not candidates:
        return None
    winner = min(
        candidates, key=lambda p: (p.resource.metadata.creation_timestamp or "", p.namespace, p.name)
    )
    return winner.id


def plaintext_models(
    parsed: Parsed[RoutingPolicy], models: Mapping[str, Parsed[LLMModel]]
) -> tuple[list[str], list[str]]:
    """The policy's allowInClusterPlaintext split into model ids that qualify (self-hosted: the
    operator renders the NetworkPolicy that admits only gateway pods) and names that do not
    (an endpoint model, or no such LLMModel): those get no plain-HTTP allowance."""
    allowed: list[str] = []
    refused: list[str] = []
    for name in parsed.resource.spec.data_governance.allow_in_cluster_plaintext or []:
        model = models.get(f"{parsed.namespace}/{name}")
        if model is not None and model.resource.spec.serving is not None:
            allowed.append(model.id)
        else:
            refused.append(name)
    return sorted(allowed), sorted(refused)


def _retention(parsed: Parsed[RoutingPolicy]) -> gc.Retention:
    spec = parsed.resource.spec.retention
    frameworks = dict(RETENTION_DAYS)
    frameworks.update({r.framework: r.days for r in spec.frameworks or []})
    return gc.Retention(default_days=spec.default_days, frameworks=frameworks)


def _entry(
    parsed: Parsed[RoutingPolicy], is_default: bool, usable: Container[str], plaintext: list[str]
) -> gc.PolicyEntry:
    spec = parsed.resource.spec
    tiers = [
        gc.TierEntry(
            name=t.name,
            models=[f"{parsed.namespace}/{m}" for m in t.models if f"{parsed.namespace}/{m}" in usable],
        )
        for t in spec.tiers
    ]
    gov = spec.data_governance
    return gc.PolicyEntry(
        id=parsed.id,
        namespace=parsed.namespace,
        name=parsed.name,
        default=is_default,
        default_tier=spec.default_tier or spec.tiers[0].name,
        tiers=tiers,
        fallback=gc.Fallback(
            max_attempts=spec.fallback.max_attempts,
            retry_on=list(spec.fallback.retry_on),
            across_tiers=list(spec.fallback.across_tiers),
        ),
        scoring=gc.Scoring(**spec.scoring.model_dump(by_alias=False)),
        timeouts=gc.Timeouts(**spec.timeouts.model_dump(by_alias=False)),
        circuit_breaker=gc.CircuitBreaker(**spec.circuit_breaker.model_dump(by_alias=False)),
        data_governance=gc.DataGovernance(
            pii_redaction=gov.pii_redaction,
            rules=[
                gc.ClassificationRule(
                    classification=r.classification,
                    allowed_tiers=sorted(r.allowed_tiers) if r.allowed_tiers is not None else None,
                    allowed_regions=sorted(r.allowed_regions) if r.allowed_regions is not None else None,
                    pii_redaction=r.pii_redaction,
                )
                for r in sorted(gov.rules or [], key=lambda r: r.classification)
            ],
            output_scanning=gov.output_scanning,
            in_cluster_plaintext=[m for m in plaintext if m in usable],
        ),
        cache=gc.Cache(**spec.cache.model_dump(by_alias=False)),
        retention=_retention(parsed),
    )


def resolve_policy(
    parsed: Parsed[RoutingPolicy],
    models: Mapping[str, Parsed[LLMModel]],
    known_models: Container[str],
    usable_models: Container[str],
    default_id: str | None,
) -> PolicyOutcome:
    """The policy's verdict and config entry. What it reads besides the policy is exactly its
    arguments, each only by looking up the ids the policy names: `models` (valid LLMModels by
    id), `known_models` (ids of every LLMModel given, valid or not), `usable_models` (ids in
    the gateway config) and the default policy's id; the incremental renderer relies on that."""
    spec = parsed.resource.spec
    missing: list[str] = []
    unusable: list[str] = []
    for tier in spec.tiers:
        for model in tier.models:
            model_id = f"{parsed.namespace}/{model}"
            if model_id in usable_models:
                continue
            bucket = unusable if model_id in known_models else missing
            if model not in bucket:
                bucket.append(model)
    missing.sort()
    unusable.sort()
    is_default = parsed.id == default_id
    problems: list[tuple[str, str]] = []
    if missing:
        problems.append(("MissingModels", f"missing LLMModel(s) in {parsed.namespace}: {', '.join(missing)}"))
    if unusable:
        problems.append(
            (
                "UnusableModels",
                f"LLMModel(s) not ready for the gateway: {', '.join(unusable)} (see their status)",
            )
        )
    plaintext, unprotected = plaintext_models(parsed, models)
    if unprotected:
        problems.append(
            (
                "PlaintextNotProtected",
                "dataGovernance.allowInClusterPlaintext names model(s) that are not self-hosted (no "
                f"NetworkPolicy of the operator protects their plain HTTP): {', '.join(unprotected)}; "
                "regulated requests reach them only over TLS",
            )
        )
    if spec.default and not is_default:
        problems.append(
            (
                "DefaultConflict",
                f"RoutingPolicy {default_id} is already the default (oldest wins); this policy applies "
                "only to TenantQuotas that name it",
            )
        )
    if problems:
        ready = ConditionVerdict("Ready", "False", problems[0][0], "; ".join(m for _, m in problems))
    else:
        ready = ConditionVerdict("Ready", "True", "AllModelsReady", "every model the policy names is usable")
    verdict = PolicyVerdict(
        namespace=parsed.namespace,
        name=parsed.name,
        is_default=is_default,
        in_config=True,
        ready=ready,
        missing_models=tuple(missing),
        unusable_models=tuple(unusable),
    )
    return PolicyOutcome(verdict, _entry(parsed, is_default, usable_models, plaintext))


def invalid_policy(invalid: Invalid) -> PolicyVerdict:
    return PolicyVerdict(
        namespace=invalid.namespace,
        name=invalid.name,
        is_default=False,
        in_config=False,
        ready=ConditionVerdict("Ready", "False", "InvalidSpec", invalid.error),
    )
