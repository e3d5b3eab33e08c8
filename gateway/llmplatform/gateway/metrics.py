"""Prometheus metrics, named `llmplatform_*`.

Why these labels only: every label value comes from the config (tenant ids, model names, tier
names), from a fixed set (status codes the gateway emits, error kinds, limit names) or is
replaced by `none`, so a caller cannot create series by sending odd model names. With
`--workers N` the processes share a prometheus multiprocess directory, so any worker's
/metrics shows the sum over all of them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "llmplatform_requests",
    "Requests answered, by final status; `api`: the client's API (chat, completions, embeddings,"
    " responses, messages), `endpoint`: the OpenAI form it ran as (chat, completions, embeddings)",
    ["tenant", "model", "tier", "endpoint", "api", "status"],
)
LATENCY = Histogram(
    "llmplatform_request_duration_seconds",
    "Time to the full response (streams: to the last byte)",
    ["tenant", "model", "tier"],
    buckets=LATENCY_BUCKETS,
)
FIRST_CHUNK = Histogram(
    "llmplatform_stream_first_chunk_seconds",
    "Time to the first streamed chunk",
    ["tenant", "model", "tier"],
    buckets=LATENCY_BUCKETS,
)
TOKENS = Counter(
    "llmplatform_tokens", "Tokens as reported by the upstream", ["tenant", "model", "tier", "direction"]
)
COST = Counter("llmplatform_cost_usd", "Cost in USD at the model's prices", ["tenant", "model", "tier"])
FALLBACKS = Counter(
    "llmplatform_fallbacks", "Attempts that moved on to another model", ["tenant", "model", "tier"]
)
RATE_LIMITED = Counter(
    "llmplatform_rate_limited", "Requests refused by a limit or budget", ["tenant", "scope", "limit"]
)
CACHE_HITS = Counter("llmplatform_cache_hits", "Responses served from the cache", ["tenant", "model", "tier"])
CACHE_MISSES = Counter(
    "llmplatform_cache_misses", "Cacheable requests answered by an upstream", ["tenant", "model", "tier"]
)
PII_FINDINGS = Counter(
    "llmplatform_pii_findings",
    "Personal data found, by type, in requests and (with outputScanning) responses",
    ["tenant", "type", "direction"],
)
REDACTED = Counter(
    "llmplatform_redactions",
    "Requests sent upstream as the redacted copy, and responses redacted by outputScanning",
    ["tenant", "direction"],
)
GOVERNANCE_DENIED = Counter(
    "llmplatform_governance_denied",
    "Requests refused by data governance (reason: role, classification, residency)",
    ["tenant", "reason"],
)
UPSTREAM_ERRORS = Counter(
    "llmplatform_upstream_errors", "Failed upstream attempts", ["model", "tier", "kind"]
)
CIRCUIT_STATE = Gauge(
    "llmplatform_circuit_breaker_state",
    "0 closed, 1 open, 2 half-open",
    ["model", "tier"],
    multiprocess_mode="max",
)
CONFIG_RELOADS = Counter("llmplatform_config_reloads", "Config load attempts", ["result"])
CONFIG_REJECTED = Counter(
    "llmplatform_config_rejected",
    "Configs refused at load or reload, by reason (invalid, unreadable, unsupported_version, "
    "incomplete_generation, no_models, no_keys, models_removed, keys_removed); the previous config "
    "keeps serving",
    ["reason"],
)
CONNECTIONS_CLOSED = Counter(
    "llmplatform_connections_closed",
    "Client connections the gateway closed itself (head_timeout, body_timeout, malformed_request, "
    "write_timeout)",
    ["reason"],
)
TLS_RELOADS = Counter(
    "llmplatform_tls_reloads",
    "Changed TLS certificate files loaded (loaded) or refused (rejected: the previous pair keeps serving)",
    ["result"],
)
TLS_STALE = Gauge(
    "llmplatform_tls_stale",
    "1 while the TLS files on disk are refused and an older certificate serves; absent without TLS",
    multiprocess_mode="max",
)
CREDENTIALS_MISSING = Gauge(
    "llmplatform_model_credentials_missing",
    "1 while a model's apiKeySecretRef names a credential this gateway cannot read (not mounted "
    "or empty): the model is skipped, never called without its key; 0 once it is readable",
    ["model"],
    multiprocess_mode="max",
)
CONFIG_LOADED = Gauge("llmplatform_config_loaded", "1 once a config is serving", multiprocess_mode="min")
REDIS_UP = Gauge(
    "llmplatform_redis_up",
    "1 when the shared limit store answers, 0 when not, absent without Redis",
    multiprocess_mode="min",
)
USAGE_REJECTED = Counter(
    "llmplatform_upstream_usage_rejected",
    "Upstream answers whose reported usage was not believable (the gateway's own count was charged)",
    ["model", "tier"],
)
LIMITER_DEGRADED = Counter(
    "llmplatform_limiter_fallback", "Requests limited per replica because Redis was unreachable", []
)


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest()
