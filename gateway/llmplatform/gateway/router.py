"""Which models may serve a request, and in which order to try them.

Why a pure function over the compiled config and the health book: routing decides who gets
403, 404 or 400 before anything is reserved or sent, and its order (score within a tier, then
the policy's acrossTiers) is what the fallback loop walks. Keeping it free of I/O makes every
rule unit-testable.

Scoring, per tier, with the policy's weights (availability, cost, latency, priority):
- availability: the model's observed success EWMA, else its spec prior;
- cost: cheapest price / this model's price (input+output), so 1 for the cheapest;
- latency: likewise, fastest / this model's latency EWMA, else the spec's expectedLatencyMs;
- priority: the request's X-LLM-Priority p (1-10, default 5) trades speed for price: the term
  is p' * latency_score + (1 - p') * cost_score with p' = (p - 1) / 9, so urgent requests lean
  to fast models and background ones to cheap models.
Ties keep the policy's order (the sort is stable).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmplatform.contract.names import TIERS
from llmplatform.gateway.compiled import Model, Policy, Tenant
from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.health import HealthBook
from llmplatform.gateway.worstcase import Shape

TIER_NAMES = TIERS


@dataclass(frozen=True)
class Candidate:
    model: Model
    tier: str


def _spread(values: list[float]) -> list[float]:
    """lowest / value: 1.0 for the lowest, and a model twice as slow (or dear) scores 0.5.

    A ratio rather than a min-max spread, so that two models 1 ms apart are not scored as
    far apart as two models 1 s apart."""
    lo = min(values)
    return [1.0 if v <= 0 or v <= lo else max(lo, 0.0) / v for v in values]


def rank(models: list[Model], policy: Policy, health: HealthBook, priority: int) -> list[Model]:
    if len(models) < 2:
        return models
    w_avail, w_cost, w_lat, w_prio = policy.weights
    observed = [health.get(m.id) for m in models]
    avail = [
        h.success if h.success is not None else m.prior_availability
        for m, h in zip(models, observed, strict=True)
    ]
    cost = _spread([m.input_price + m.output_price for m in models])
    latency = _spread(
        [
            h.latency_ms if h.latency_ms is not None else m.prior_latency_ms
            for m, h in zip(models, observed, strict=True)
        ]
    )
    urgency = (priority - 1) / 9
    scores = [
        w_avail * avail[i]
        + w_cost * cost[i]
        + w_lat * latency[i]
        + w_prio * (urgency * latency[i] + (1 - urgency) * cost[i])
        for i in range(len(models))
    ]
    order = sorted(range(len(models)), key=lambda i: -scores[i])
    return [models[i] for i in order]


def candidates(
    tenant: Tenant,
    requested: str,
    tier_header: str | None,
    capability: str,
    prompt_tokens: int,
    max_tokens: int | None,
    priority: int,
    health: HealthBook,
    known_models: dict[str, Model],
) -> list[Candidate]:
    """The ordered fallback list for one request, or a GatewayError saying why there is none.

    `model` may name a model of the tenant's policy (it goes first, then the rest of its tier by
    score), a tier, or `auto` (the X-LLM-Tier header's tier, else the policy's default tier).
    """
    policy = tenant.policy
    named: Model | None = None
    if requested == "auto":
        tier = tier_header or policy.default_tier
    elif requested in policy.tiers or requested in TIER_NAMES:
        tier = requested
    elif requested in policy.by_name:
        named = policy.by_name[requested]
        tier = named.tier
    elif requested in known_models:
        raise GatewayError(
            403,
            f"model {requested!r} is not available under your routing policy",
            code="model_not_allowed",
            param="model",
        )
    else:
        raise GatewayError(
            404, f"The model {requested!r} does not exist", code="model_not_found", param="model"
        )
    if tier not in policy.tiers:
        raise GatewayError(
            404, f"tier {tier!r} is not offered by your routing policy", code="model_not_found", param="model"
        )
    if tier not in tenant.allowed_tiers:
        raise GatewayError(
            403, f"tier {tier!r} is not in your allowed tiers", code="tier_not_allowed", param="model"
        )

    tiers = [tier] + [
        t for t in policy.across_tiers if t != tier and t in tenant.allowed_tiers and t in policy.tiers
    ]
    result: list[Candidate] = []
    too_small = 0
    capable = 0
    for index, name in enumerate(tiers):
        pool = [m for m in policy.tiers[name] if capability in m.capabilities]
        capable += len(pool)
        fits = [m for m in pool if _fits(m, prompt_tokens, max_tokens)]
        too_small += len(pool) - len(fits)
        ranked = rank(fits, policy, health, priority)
        if index == 0 and named is not None:
            if named not in fits:
                if capability not in named.capabilities:
                    raise GatewayError(
                        400,
                        f"model {requested!r} does not support {capability}",
                        code="unsupported_capability",
                        param="model",
                    )
                raise GatewayError(
                    400,
                    _too_long(named, prompt_tokens, max_tokens),
                    code="context_length_exceeded",
                    param="messages",
                )
            ranked = [named] + [m for m in ranked if m is not named]
        result.extend(Candidate(m, name) for m in ranked)
    if not result:
        if all(not policy.tiers[t] for t in tiers):
            raise GatewayError(
                503, f"tier {tier!r} has no model this gateway can serve", code="no_model_available"
            )
        if capable == 0:
            raise GatewayError(
                400,
                f"no model in tier {tier!r} supports {capability}",
                code="unsupported_capability",
                param="model",
            )
        raise GatewayError(
            400,
            f"the prompt (~{prompt_tokens} tokens) plus max_tokens fits no context window in tier {tier!r}",
            code="context_length_exceeded",
            param="messages",
        )
    return result


def _fits(model: Model, prompt_tokens: int, max_tokens: int | None) -> bool:
    return prompt_tokens + (max_tokens or 0) <= model.context_window


def _too_long(model: Model, prompt_tokens: int, max_tokens: int | None) -> str:
    return (
        f"This model's maximum context length is {model.context_window} tokens; the request needs "
        f"~{prompt_tokens} prompt tokens plus {max_tokens or 0} for the completion"
    )


def worst_case_output(model: Model, prompt_tokens: int, shape: Shape, capability: str) -> int:
    """Output tokens to reserve (worstcase.py): per choice max_tokens, else the model's
    maxOutputTokens, else the adapter's default (a provider whose adapter always sends a
    maximum, such as anthropic), else what is left of its context window; plus the output
    billed on top per choice, times the choices generated."""
    if capability == "embeddings":
        return 0
    if shape.max_tokens is not None:
        per_choice = shape.max_tokens
    elif model.max_output_tokens is not None:
        per_choice = model.max_output_tokens
    elif model.adapter.default_output_tokens is not None:
        per_choice = model.adapter.default_output_tokens
    else:
        per_choice = max(0, model.context_window - prompt_tokens)
    return (per_choice + shape.extra_per_choice) * shape.choices
