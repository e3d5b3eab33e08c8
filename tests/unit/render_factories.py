"""Builders for resources and Secrets as the API server returns them, for the unit tests.

Why builders: each test states only what it is about (a missing Secret, a ceiling, a second
default policy) and gets a complete, valid resource otherwise.
"""

from __future__ import annotations

import base64
from typing import Any

API = "llmplatform.io/v1alpha1"
PLATFORM = "llm-platform"


def meta(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


def endpoint_model(
    name: str,
    *,
    namespace: str = PLATFORM,
    tier: str = "standard",
    secret: tuple[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"url": f"https://{name}.example.com/v1"}
    if secret is not None:
        endpoint["apiKeySecretRef"] = {"name": secret[0], "key": secret[1]}
    return {
        "apiVersion": API,
        "kind": "LLMModel",
        "metadata": meta(name, namespace),
        "spec": {"tier": tier, "contextWindow": 8192, "endpoint": endpoint, **spec},
    }


def serving_model(
    name: str,
    *,
    namespace: str = PLATFORM,
    uid: str | None = None,
    replicas: tuple[int, int] = (1, 1),
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **serving: Any,
) -> dict[str, Any]:
    metadata = meta(name, namespace)
    if uid is not None:
        metadata["uid"] = uid
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": API,
        "kind": "LLMModel",
        "metadata": metadata,
        "spec": {
            "tier": "efficient",
            "contextWindow": 8192,
            "serving": {
                "image": "vllm/vllm-openai:v0.6.3",
                "replicas": {"min": replicas[0], "max": replicas[1]},
                **serving,
            },
        },
    }


def policy(
    name: str = "default",
    *,
    namespace: str = PLATFORM,
    default: bool = True,
    tiers: dict[str, list[str]] | None = None,
    ceilings: dict[str, Any] | None = None,
    created: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    tiers = tiers if tiers is not None else {"standard": ["m1"]}
    metadata = meta(name, namespace)
    if created is not None:
        metadata["creationTimestamp"] = created
    body: dict[str, Any] = {
        "default": default,
        "tiers": [{"name": t, "models": models} for t, models in tiers.items()],
        **spec,
    }
    if ceilings is not None:
        body["tenantCeilings"] = ceilings
    return {"apiVersion": API, "kind": "RoutingPolicy", "metadata": metadata, "spec": body}


def quota(
    name: str = "team-a",
    *,
    namespace: str = "team-a",
    limits: dict[str, Any] | None = None,
    keys: list[dict[str, Any]] | None = None,
    granted: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = dict(spec)
    if limits is not None:
        body["limits"] = limits
    if keys is not None:
        body["apiKeys"] = keys
    obj: dict[str, Any] = {
        "apiVersion": API,
        "kind": "TenantQuota",
        "metadata": meta(name, namespace),
        "spec": body,
    }
    if granted is not None:
        obj["status"] = {"granted": granted}
    return obj


def secret(name: str, namespace: str, **values: str) -> dict[str, Any]:
    """A Secret as the API returns it: base64 `data`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(name, namespace),
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }
