"""The benchmark fleet: 300 LLMModels (a third self-hosted), 10 RoutingPolicies and 2,000
TenantQuotas across 50 namespaces, as plain manifests.

Why generated: the operator benchmark needs a realistic, reproducible fleet of the size
issue #3 names; the same generator feeds `render` timings and the e2e-scale run.
"""

from __future__ import annotations

from typing import Any

API = "llmplatform.io/v1alpha1"
PLATFORM = "llm-platform"
TIERS = ("premium", "standard", "efficient", "specialized")


def model(i: int) -> dict[str, Any]:
    name = f"model-{i:03d}"
    spec: dict[str, Any] = {
        "tier": TIERS[i % len(TIERS)],
        "contextWindow": 8192 * (1 + i % 4),
        "pricing": {"inputPerMillionTokens": 0.1 * (1 + i % 7), "outputPerMillionTokens": 0.3 * (1 + i % 7)},
        "expectedLatencyMs": 200 + 10 * (i % 30),
        "availability": 0.99,
    }
    if i % 3 == 0:
        spec["serving"] = {
            "image": "vllm/vllm-openai:v0.6.3",
            "args": ["--model", f"org/{name}"],
            "replicas": {"min": 1, "max": 1 + i % 2},
        }
    else:
        spec["endpoint"] = {"url": f"https://{name}.example.com/v1"}
    return {
        "apiVersion": API,
        "kind": "LLMModel",
        "metadata": {"name": name, "namespace": PLATFORM},
        "spec": spec,
    }


def policy(i: int, models: int) -> dict[str, Any]:
    per = models // 10
    names = [f"model-{j:03d}" for j in range(i * per, (i + 1) * per)]
    tiers: dict[str, list[str]] = {}
    for n in names:
        tiers.setdefault(TIERS[int(n[-3:]) % len(TIERS)], []).append(n)
    return {
        "apiVersion": API,
        "kind": "RoutingPolicy",
        "metadata": {"name": f"policy-{i}", "namespace": PLATFORM},
        "spec": {
            "default": i == 0,
            "defaultTier": "standard" if "standard" in tiers else sorted(tiers)[0],
            "tiers": [{"name": t, "models": m} for t, m in sorted(tiers.items())],
            "fallback": {
                "maxAttempts": 3,
                "acrossTiers": [t for t in ("standard", "efficient") if t in tiers],
            },
            "tenantCeilings": {
                "requestsPerMinute": 1000,
                "tokensPerDay": 50_000_000,
                "costPerMonthUSD": 10_000,
            },
        },
    }


def namespace_of(i: int) -> str:
    return f"tenant-{i % 50:02d}"


def quota(i: int, policies: int = 10) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TenantQuota",
        "metadata": {"name": f"quota-{i:04d}", "namespace": namespace_of(i)},
        "spec": {
            "routingPolicy": {"name": f"policy-{i % policies}", "namespace": PLATFORM},
            "limits": {"requestsPerMinute": 100 + i % 500, "tokensPerDay": 1_000_000},
            "apiKeys": [{"name": "app", "user": f"svc-{i}", "role": "business_user"}],
        },
    }


def namespaces() -> list[dict[str, Any]]:
    names = [PLATFORM, *sorted({namespace_of(i) for i in range(50)})]
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names]


def fleet(models: int = 300, policies: int = 10, quotas: int = 2000) -> list[dict[str, Any]]:
    """Policies first, then models, then quotas (the order `kubectl apply` gets them)."""
    return (
        [policy(i, models) for i in range(policies)]
        + [model(i) for i in range(models)]
        + [quota(i, policies) for i in range(quotas)]
    )
