"""OpenTelemetry traces of the gateway: a span per request, a child span per upstream attempt,
events for fallback and rate-limit decisions, W3C `traceparent` in from clients and out to
upstreams. Off unless an OTLP endpoint is set (contract/telemetry.py has the rules).

Why a room of its own with a handful of hooks: the request path stays what it was, plus one
`ctx.trace` check at each hook; with tracing off `ctx.trace` is None, so a request pays a few
attribute checks and the OpenTelemetry SDK is never even imported (the SDK is imported inside
`Tracer.from_env`, and only when tracing is on). The hooks, for any endpoint handler:

    tracing.begin(ctx, gateway.tracer)   # first thing: the request span (reads traceparent)
    tracing.end(ctx)                     # last thing (after the audit record): attributes, end
    ctx.trace.attempt_start(ctx, model) / .attempt_end(ctx, result)   # upstream.py, per attempt
    ctx.trace.inject(upstream_headers)   # upstream.py: traceparent of the attempt span
    ctx.trace.event(name, attributes)    # decisions (fallback, circuit open, rate limit)

What spans carry follows the OpenTelemetry GenAI semantic conventions (`gen_ai.*`) and the
platform's own `llmplatform.*` attributes, and NEVER content: no prompt, completion, message,
tool argument, key or end-user id is ever read here, only names, counts and decisions that the
metrics and the audit record carry already (tests/e2e/test_tracing.py checks a marker put in
prompts and answers never reaches the collector).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llmplatform.contract.telemetry import tracing_settings
from llmplatform.gateway.providers.base import Failure

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span
    from opentelemetry.trace import Tracer as OtelTracer

    from llmplatform.gateway.compiled import Model
    from llmplatform.gateway.context import Ctx

log = logging.getLogger("llmplatform.gateway")

SERVICE_NAME = "llmplatform-gateway"
OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
OPERATIONS["messages"] = "chat"  # Anthropic's Messages API is a chat API
"""Gateway endpoint -> `gen_ai.operation.name` (an endpoint not listed is named as itself)."""
MODEL_NAME_MAX = 128
"""A client's `model` is recorded up to this many characters (it is a name, not content)."""


@functools.lru_cache(maxsize=256)
def _server(url: str) -> tuple[str, int]:
    """`server.address` and `server.port` of an upstream URL (parsed once per URL)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


class Tracer:
    """The SDK's tracer provider of one process (one per gateway worker), exporting over
    OTLP/HTTP in batches from a background thread."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer: OtelTracer = provider.get_tracer("llmplatform.gateway")
        self.propagator = TraceContextTextMapPropagator()
        self.server_kind, self.client_kind = SpanKind.SERVER, SpanKind.CLIENT
        self.error = Status(StatusCode.ERROR)
        self.in_context = set_span_in_context

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Tracer | None:
        """A tracer when the `OTEL_*` variables turn tracing on, else None (and no import).
        Raises TelemetryConfigError for a variable it cannot honour."""
        settings = tracing_settings(os.environ if env is None else env, SERVICE_NAME)
        if settings is None:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": settings.service_name}))
        provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER(_ARG)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_BSP_*
        log.info(
            "tracing on",
            extra={"otlp_endpoint": settings.endpoint, "sampler": settings.sampler, "ratio": settings.ratio},
        )
        return cls(provider)

    def shutdown(self) -> None:
        """Export what is still queued (bounded by OTEL_BSP_EXPORT_TIMEOUT), then stop."""
        self.provider.shutdown()


class RequestTrace:
    """The spans of one request: the request span and the attempt span in flight."""

    __slots__ = ("attempt", "owner", "recording", "span")

    def __init__(self, owner: Tracer, span: Span) -> None:
        self.owner = owner
        self.span = span
        self.recording = span.is_recording()
        """False when the sampler dropped the request: attributes are not even computed, but
        the trace context still propagates (with its sampled flag off)."""
        self.attempt: Span | None = None

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        if self.recording:
            self.span.add_event(name, attributes)

    def attempt_start(self, ctx: Ctx, model: Model) -> None:
        """A child span for one upstream attempt (ended by `attempt_end`)."""
        owner = self.owner
        attributes: dict[str, Any] = {}
        if self.recording:
            address, port = _server(model.urls.get(ctx.endpoint, ""))
            attributes = {
                "gen_ai.operation.name": OPERATIONS.get(ctx.endpoint, ctx.endpoint),
                "gen_ai.provider.name": model.provider,
                "gen_ai.system": model.provider,
                "gen_ai.request.model": model.upstream_model,
                "server.address": address,
                "server.port": port,
                "llmplatform.model": model.name,
                "llmplatform.tier": ctx.tier,
                "llmplatform.fallback_level": ctx.fallback_level,
                "llmplatform.redacted": ctx.redacted,
            }
        self.attempt = owner.tracer.start_span(
            f"{OPERATIONS.get(ctx.endpoint, ctx.endpoint)} {model.upstream_model}",
            context=owner.in_context(self.span),
            kind=owner.client_kind,
            attributes=attributes,
        )

    def inject(self, headers: dict[str, str]) -> None:
        """`traceparent` (and `tracestate`) of the attempt span into the upstream's headers."""
        span = self.attempt if self.attempt is not None else self.span
        self.owner.propagator.inject(headers, context=self.owner.in_context(span))

    def attempt_end(self, ctx: Ctx, result: object) -> None:
        """End the attempt span: `result` is the answer (a StreamResponse), a providers.Failure
        or the exception that ended the attempt."""
        span, self.attempt = self.attempt, None
        if span is None:
            return
        if span.is_recording():
            if isinstance(result, Failure):
                kind, status = result.kind, result.status
                span.set_attribute("error.type", str(status) if kind == "status" else kind)
                if status:
                    span.set_attribute("http.response.status_code", status)
                span.set_status(self.owner.error)
            elif isinstance(result, BaseException):
                span.set_attribute("error.type", type(result).__name__)
                span.set_status(self.owner.error)
            else:
                span.set_attribute("http.response.status_code", getattr(result, "status", 0))
                span.set_attribute("gen_ai.response.model", ctx.served.upstream_model if ctx.served else "")
                if ctx.usage_reported:
                    span.set_attribute("gen_ai.usage.input_tokens", ctx.tokens_in)
                    span.set_attribute("gen_ai.usage.output_tokens", ctx.tokens_out)
        span.end()

    def finish(self, ctx: Ctx) -> None:
        """The request span's attributes (what the audit record says, without content), end."""
        span = self.span
        if self.attempt is not None:  # an attempt cut short (cancelled): end it too
            self.attempt_end(ctx, CancelledAttempt())
        if self.recording:
            operation = OPERATIONS.get(ctx.endpoint, ctx.endpoint)
            requested = ctx.body.get("model")
            requested = requested[:MODEL_NAME_MAX] if isinstance(requested, str) else None
            span.update_name(f"{operation} {requested}" if requested else operation)
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": operation,
                "http.response.status_code": ctx.status,
                "llmplatform.request_id": ctx.request_id,
                "llmplatform.api": ctx.endpoint,  # as in the audit record
                "llmplatform.endpoint": ctx.form,
                "llmplatform.tenant": ctx.tenant,
                "llmplatform.stream": ctx.stream,
                "llmplatform.fallback_level": ctx.fallback_level,
                "llmplatform.redacted": ctx.redacted,
            }
            if requested:
                attributes["gen_ai.request.model"] = requested
            if ctx.classification is not None:
                attributes["llmplatform.classification"] = ctx.classification
            if ctx.cache is not None:
                attributes["llmplatform.cache"] = ctx.cache
                attributes["llmplatform.cache_hit"] = ctx.cache == "hit"
            if ctx.served is not None:
                attributes.update(
                    {
                        "gen_ai.provider.name": ctx.served.provider,
                        "gen_ai.system": ctx.served.provider,
                        "gen_ai.response.model": ctx.served.upstream_model,
                        "gen_ai.usage.input_tokens": ctx.tokens_in,
                        "gen_ai.usage.output_tokens": ctx.tokens_out,
                        "llmplatform.model": ctx.model,
                        "llmplatform.tier": ctx.tier,
                        "llmplatform.usage_reported": ctx.usage_reported,
                    }
                )
            if ctx.status >= 400:
                attributes["error.type"] = ctx.error_code or str(ctx.status)
            if ctx.status >= 500:
                span.set_status(self.owner.error)
            span.set_attributes(attributes)
        span.end()


class CancelledAttempt(Exception):
    """Stands for an attempt the request's end cut short."""


def begin(ctx: Ctx, tracer: Tracer | None) -> None:
    """Start the request span (a child of the client's `traceparent` when it sent a valid one;
    a malformed one is ignored, as W3C Trace Context says); nothing when tracing is off."""
    if tracer is None:
        return
    try:  # never fails a request: at worst it goes untraced
        parent = tracer.propagator.extract(ctx.http.headers)
        span = tracer.tracer.start_span(
            OPERATIONS.get(ctx.endpoint, ctx.endpoint), context=parent, kind=tracer.server_kind
        )
    except Exception:
        log.exception("could not start the request span", extra={"request_id": ctx.request_id})
        return
    ctx.trace = RequestTrace(tracer, span)


def end(ctx: Ctx) -> None:
    """End the request's spans; never raises (tracing must not fail a request)."""
    trace = ctx.trace
    if not isinstance(trace, RequestTrace):
        return
    try:
        trace.finish(ctx)
    except Exception:
        log.exception("could not end the request span", extra={"request_id": ctx.request_id})
