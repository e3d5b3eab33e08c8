"""OpenTelemetry traces of the gateway: a span per request, a child span per upstream attempt,
events for fallback and rate-limit decisions, W3C `traceparent` in from clients and out to
upstreams. Off unless an OTLP endpoint is set (contract/telemetry.py has the rules).

Why a room of its own with a handful of hooks: the request path stays what it was, plus one
`ctx.trace` check at each hook; with tracing off `ctx.trace` is None, so a request pays a few
attribute checks and the OpenTelemetry SDK is never even imported (the SDK is imported inside
`Tracer.from_env`, and only when tracing is on).

Why the sampling decision is taken here, once, before any span exists: a request the sampler
drops must cost next to nothing (issue #17: at most 10% of the throughput at ratio 0.1). So
`begin` draws the trace id (or reads the client's `traceparent`, only when one was sent) and
asks the contract's sampler rule (`TracingSettings.samples`, the SDK samplers' definition); a
dropped request gets an `Unsampled` trace, whose hooks do nothing but hand the trace context
on to the upstream (a `traceparent` with the sampled flag off, formatted directly). Only a
sampled request creates SDK spans, from a provider whose own sampler is "always on" (the
decision is made) and whose id generator hands it the trace id that was decided on.
The hooks, for any endpoint handler:

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
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from llmplatform.contract.telemetry import TracingSettings, tracing_settings
from llmplatform.gateway.providers.base import Failure

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
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
RANDOM_TRACE_ID = 0x02
"""W3C Trace Context level 2's "random" trace flag: set on ids this process draws (as the SDK
does), inherited from a client's parent otherwise."""


@functools.lru_cache(maxsize=256)
def _server(url: str) -> tuple[str, int]:
    """`server.address` and `server.port` of an upstream URL (parsed once per URL)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


class Tracer:
    """The SDK's tracer provider of one process (one per gateway worker), exporting over
    OTLP/HTTP in batches from a background thread, and the sampling decision of each request."""

    def __init__(self, provider: TracerProvider, settings: TracingSettings, ids: RandomIdGenerator) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.settings = settings
        self.ids = ids
        """The provider's id generator: `ids.next` is the trace id of the next root span."""
        self.tracer: OtelTracer = provider.get_tracer("llmplatform.gateway")
        self.propagator = TraceContextTextMapPropagator()
        self.server_kind, self.client_kind = SpanKind.SERVER, SpanKind.CLIENT
        self.error = Status(StatusCode.ERROR)
        self.in_context = set_span_in_context
        self.span_of = get_current_span

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
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": settings.service_name}))
        ids = _decided_ids()
        # the sampler of OTEL_TRACES_SAMPLER(_ARG) is applied in `start`, before any span
        provider = TracerProvider(resource=resource, sampler=ALWAYS_ON, id_generator=ids)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # OTEL_BSP_*
        log.info(
            "tracing on",
            extra={"otlp_endpoint": settings.endpoint, "sampler": settings.sampler, "ratio": settings.ratio},
        )
        return cls(provider, settings, ids)

    def start(self, ctx: Ctx) -> RequestTrace | Unsampled:
        """The request's trace: its sampling decided once, from the client's `traceparent`
        when it sent a valid one (a malformed one is ignored, as W3C Trace Context says), else
        from a trace id drawn here."""
        headers = ctx.http.headers
        parent = None
        if "traceparent" in headers:
            parent = self.propagator.extract(headers)
            remote = self.span_of(parent).get_span_context()
            if remote.is_valid:
                if not self.settings.samples(remote.trace_id, remote.trace_flags.sampled):
                    state = remote.trace_state.to_header() if remote.trace_state else None
                    return Unsampled(remote.trace_id, remote.trace_flags & RANDOM_TRACE_ID, state)
                return RequestTrace(self, self._span(ctx, parent))
        trace_id = random.getrandbits(128) or 1
        if not self.settings.samples(trace_id, None):
            return Unsampled(trace_id, RANDOM_TRACE_ID, None)
        self.ids.next = trace_id  # type: ignore[attr-defined]  # read by the span created now
        return RequestTrace(self, self._span(ctx, None))

    def _span(self, ctx: Ctx, parent: Any) -> Span:
        return self.tracer.start_span(
            OPERATIONS.get(ctx.endpoint, ctx.endpoint), context=parent, kind=self.server_kind
        )

    def shutdown(self) -> None:
        """Export what is still queued (bounded by OTEL_BSP_EXPORT_TIMEOUT), then stop."""
        self.provider.shutdown()


def _decided_ids() -> RandomIdGenerator:
    """The SDK's random id generator, except that a root span takes the trace id `start`
    decided on (set as `next` just before the span is created, in the same loop turn)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class DecidedIds(RandomIdGenerator):
        next: int = 0

        def generate_trace_id(self) -> int:
            trace_id, self.next = self.next, 0
            return trace_id or super().generate_trace_id()

    return DecidedIds()


class Unsampled:
    """The trace of a request the sampler dropped: no span, no attribute, no export; only the
    trace context goes on to the upstream (sampled flag off), with a fresh span id per attempt
    as an unsampled SDK span would have."""

    __slots__ = ("flags", "state", "trace_id")
    recording = False

    def __init__(self, trace_id: int, flags: int, state: str | None) -> None:
        self.trace_id, self.flags, self.state = trace_id, flags, state

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        pass

    def attempt_start(self, ctx: Ctx, model: Model) -> None:
        pass

    def attempt_end(self, ctx: Ctx, result: object) -> None:
        pass

    def inject(self, headers: dict[str, str]) -> None:
        span_id = random.getrandbits(64) or 1
        headers["traceparent"] = f"00-{self.trace_id:032x}-{span_id:016x}-{self.flags:02x}"
        if self.state:
            headers["tracestate"] = self.state


class RequestTrace:
    """The spans of one request: the request span and the attempt span in flight."""

    __slots__ = ("attempt", "owner", "span")
    recording = True
    """Only a sampled request has one (an `Unsampled` stands for the others)."""

    def __init__(self, owner: Tracer, span: Span) -> None:
        self.owner = owner
        self.span = span
        self.attempt: Span | None = None

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        self.span.add_event(name, attributes)

    def attempt_start(self, ctx: Ctx, model: Model) -> None:
        """A child span for one upstream attempt (ended by `attempt_end`)."""
        owner = self.owner
        address, port = _server(model.urls.get(ctx.endpoint, ""))
        attributes: dict[str, Any] = {
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
    """Start the request's trace (`Tracer.start`); nothing when tracing is off."""
    if tracer is None:
        return
    try:  # never fails a request: at worst it goes untraced
        ctx.trace = tracer.start(ctx)
    except Exception:
        log.exception("could not start the request span", extra={"request_id": ctx.request_id})


def end(ctx: Ctx) -> None:
    """End the request's spans; never raises (tracing must not fail a request)."""
    trace = ctx.trace
    if not isinstance(trace, RequestTrace):
        return
    try:
        trace.finish(ctx)
    except Exception:
        log.exception("could not end the request span", extra={"request_id": ctx.request_id})
