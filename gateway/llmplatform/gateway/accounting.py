"""What a finished request counts: its usage (read once, from the OpenAI-shaped answer), the
PII found in its answer, its metrics and its one audit record.

Why together: these are the only places that turn a response into numbers; a provider adapter
has already made every answer OpenAI-shaped, so usage has one parser here.
"""

from __future__ import annotations

import json
import time
from typing import Any

from llmplatform.gateway import governance as gv
from llmplatform.gateway import metrics as m
from llmplatform.gateway.audit import AuditSink, request_record
from llmplatform.gateway.compiled import Model
from llmplatform.gateway.context import Ctx


def usage_of(raw: bytes) -> dict[str, Any] | None:
    """The `usage` object of an OpenAI JSON answer, or None."""
    try:
        found = json.loads(raw).get("usage")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, dict) else None


def take_usage(ctx: Ctx, model: Model, usage: Any) -> None:
    """Record reported usage (prompt and completion tokens) and its cost on the request."""
    if isinstance(usage, dict):
        ctx.tokens_in = int(usage.get("prompt_tokens") or 0)
        ctx.tokens_out = int(usage.get("completion_tokens") or 0)
        ctx.cost = model.cost(ctx.tokens_in, ctx.tokens_out)
        ctx.usage_reported = True


def count_output(ctx: Ctx, found: dict[str, int]) -> None:
    for kind, n in found.items():
        m.PII_FINDINGS.labels(ctx.tenant, kind, "response").inc(n)
    if found:
        m.REDACTED.labels(ctx.tenant, "response").inc()


def scan_json(ctx: Ctx, raw: bytes) -> bytes:
    """A JSON answer with the PII in it redacted (output scanning)."""
    raw, found = gv.redact_response(raw, ctx.endpoint, ctx.hipaa)
    count_output(ctx, found)
    return raw


class Recorder:
    """Metrics and the audit line of every request, with the label children cached (bounded:
    config values and HTTP status codes)."""

    def __init__(self, audit: AuditSink) -> None:
        self.audit = audit
        self._children: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self._requests: dict[tuple[str, str, str, str, int], Any] = {}

    def record(self, ctx: Ctx) -> None:
        elapsed = time.perf_counter() - ctx.start
        labels = (ctx.tenant, ctx.model, ctx.tier, ctx.endpoint, ctx.status)
        requests = self._requests.get(labels)
        if requests is None:
            requests = self._requests[labels] = m.REQUESTS.labels(*labels[:4], str(ctx.status))
        requests.inc()
        if ctx.served is not None:
            key = (ctx.tenant, ctx.model, ctx.tier)
            children = self._children.get(key)
            if children is None:  # bounded: tenants x models x tiers of the config
                children = self._children[key] = (
                    m.LATENCY.labels(*key),
                    m.TOKENS.labels(*key, "in"),
                    m.TOKENS.labels(*key, "out"),
                    m.COST.labels(*key),
                    m.FIRST_CHUNK.labels(*key),
                )
            latency, tokens_in, tokens_out, cost, first_chunk = children
            latency.observe(elapsed)
            tokens_in.inc(ctx.tokens_in)
            tokens_out.inc(ctx.tokens_out)
            cost.inc(ctx.cost)
            if ctx.first_chunk is not None:
                first_chunk.observe(ctx.first_chunk)
            if ctx.cache is not None:
                (m.CACHE_HITS if ctx.cache == "hit" else m.CACHE_MISSES).labels(*key).inc()
            if ctx.redacted:
                m.REDACTED.labels(ctx.tenant, "request").inc()
        self.audit.write(request_record(ctx, elapsed))
