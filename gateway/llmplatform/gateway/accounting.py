"""What a finished request counts: its usage (read once, from the OpenAI-shaped answer), the
PII found in its answer, its metrics and its one audit record.

Why together: these are the only places that turn a response into numbers; a provider adapter
has already made every answer OpenAI-shaped, so usage has one parser here.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from llmplatform.gateway import governance as gv
from llmplatform.gateway import metrics as m
from llmplatform.gateway.audit import AuditSink, minimal_record, request_record
from llmplatform.gateway.compiled import Model
from llmplatform.gateway.context import Ctx
from llmplatform.gateway.tokens import BYTES_PER_TOKEN, text_tokens

log = logging.getLogger("llmplatform.gateway")


def answer_of(raw: bytes) -> dict[str, Any]:
    """An OpenAI JSON answer, parsed ({} when it is not a JSON object)."""
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


USAGE_CEILING = 10_000_000
"""No single request bills more tokens than this on either side, whatever the model."""
PROMPT_SLACK = 4096
"""Added to the prompt bound: message framing, images and other parts the estimate counts flat."""


def valid_usage(ctx: Ctx, model: Model, usage: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens when `usage` is believable, else None.

    Believable: a JSON object whose `prompt_tokens` (and, except for embeddings,
    `completion_tokens`) are integers (not bools, floats or strings), not negative, and bounded:
    prompt by the larger of the model's context window and the prompt's size in bytes (no
    tokenizer makes more tokens than bytes) plus some slack; completion by the output the
    gateway reserved for the request (worstcase.py, which covers n, best_of and max_tokens);
    both by USAGE_CEILING."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0 if ctx.endpoint == "embeddings" else None)
    for value in (prompt, completion):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= USAGE_CEILING:
            return None
    assert isinstance(prompt, int) and isinstance(completion, int)
    prompt_bound = max(model.context_window, ctx.prompt * BYTES_PER_TOKEN) + PROMPT_SLACK
    if prompt > prompt_bound or completion > ctx.worst_out:
        return None
    return prompt, completion


def own_count(ctx: Ctx) -> tuple[int, int]:
    """(prompt, completion) tokens charged when no believable usage came: the prompt estimate
    (it over-counts on purpose) and the output relayed, never past the output reserved, which
    the upstream cannot exceed (max_tokens per choice, times the choices)."""
    return ctx.prompt, min(ctx.relayed_out, ctx.worst_out)


def take_usage(ctx: Ctx, model: Model, usage: Any) -> None:
    """Record reported usage (prompt and completion tokens) and its cost on the request, when
    it is believable (`valid_usage`); otherwise log it (no content, no values: they are the
    upstream's) and leave the request to the gateway's own count at settlement."""
    found = valid_usage(ctx, model, usage)
    if found is None and usage is None:  # an upstream that reports none: counted quietly
        return
    if found is None:
        ctx.usage_rejected = True
        m.USAGE_REJECTED.labels(model.name, model.tier).inc()
        log.warning(
            "upstream reported unusable usage; the gateway's own count is charged",
            extra={"request_id": ctx.request_id, "model": model.name},
        )
        return
    ctx.tokens_in, ctx.tokens_out = found
    ctx.cost = model.cost(ctx.tokens_in, ctx.tokens_out)
    ctx.usage_reported = True


def output_tokens(answer: Any) -> int:
    """The gateway's own count of the output in an OpenAI answer or stream chunk: the tokens of
    every generated text (content, completion text, refusal, tool-call names and arguments),
    estimated like prompts (tokens.py), at least one per choice that carried any."""
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        return 0
    total = 0
    for choice in answer["choices"]:
        if not isinstance(choice, dict):
            continue
        parts: list[Any] = [choice.get("text")]
        for holder in (choice.get("message"), choice.get("delta")):
            if isinstance(holder, dict):
                parts += [holder.get("content"), holder.get("refusal")]
                calls = holder.get("tool_calls")
                if isinstance(calls, list):
                    for call in calls:
                        fn = call.get("function") if isinstance(call, dict) else None
                        if isinstance(fn, dict):
                            parts += [fn.get("name"), fn.get("arguments")]
        text = "".join(p for p in parts if isinstance(p, str))
        if text:
            total += max(1, text_tokens(text))
    return total


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
        self._requests: dict[tuple[str, str, str, str, str, int], Any] = {}

    def record(self, ctx: Ctx) -> None:
        """Metrics, then the request's one audit record; never raises (a failure in the
        metrics still writes the record, a failure building it writes a minimal one)."""
        elapsed = time.perf_counter() - ctx.start
        try:
            self._metrics(ctx, elapsed)
        except Exception:
            log.exception("could not record metrics", extra={"request_id": ctx.request_id})
        try:
            record = request_record(ctx, elapsed)
        except Exception:
            log.exception("could not build the audit record", extra={"request_id": ctx.request_id})
            record = minimal_record(ctx, elapsed)
        try:
            self.audit.write(record)
        except Exception:
            log.exception("could not write the audit record", extra={"request_id": ctx.request_id})

    def _metrics(self, ctx: Ctx, elapsed: float) -> None:
        labels = (ctx.tenant, ctx.model, ctx.tier, ctx.form, ctx.endpoint, ctx.status)
        requests = self._requests.get(labels)
        if requests is None:
            requests = self._requests[labels] = m.REQUESTS.labels(*labels[:5], str(ctx.status))
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
