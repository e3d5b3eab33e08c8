"""The gateway's per-request sampling decision (tracing.Tracer.start): a dropped request gets no
span, only the trace context for the upstream; a sampled root span carries the very trace id
that was decided on. Against the real OpenTelemetry SDK (no exporter: nothing leaves the test);
tests/e2e/test_tracing.py checks the same through HTTP with a real collector."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from llmplatform.contract.telemetry import TracingSettings, tracing_settings
from llmplatform.gateway.context import Ctx
from llmplatform.gateway.tracing import RequestTrace, Tracer, Unsampled, _decided_ids

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def tracer(ratio: str) -> Tracer:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": ratio,
    }
    settings = tracing_settings(env, "test")
    assert isinstance(settings, TracingSettings)
    ids = _decided_ids()
    return Tracer(TracerProvider(sampler=ALWAYS_ON, id_generator=ids), settings, ids)


def ctx(headers: dict[str, str]) -> Ctx:
    request = make_mocked_request("POST", "/v1/chat/completions", headers=headers)
    return Ctx(request_id="r", endpoint="chat", start=0.0, http=request)


def test_a_dropped_root_request_only_hands_on_a_traceparent() -> None:
    trace = tracer("0").start(ctx({}))
    assert isinstance(trace, Unsampled) and not trace.recording
    headers: dict[str, str] = {}
    trace.inject(headers)
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, flags) == ("00", "02")  # not sampled; the id is random (W3C level 2)
    assert int(trace_id, 16) == trace.trace_id and int(span_id, 16) != 0
    assert "tracestate" not in headers


def test_a_clients_unsampled_parent_is_followed_with_its_tracestate() -> None:
    parent = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-00", "tracestate": "vendor=abc"}
    trace = tracer("1").start(ctx(parent))  # parent-based: the client's flag decides
    assert isinstance(trace, Unsampled)
    headers: dict[str, str] = {}
    trace.inject(headers)
    assert headers["traceparent"].startswith(f"00-{TRACE}-") and headers["traceparent"].endswith("-00")
    assert headers["tracestate"] == "vendor=abc"


def test_a_sampled_root_span_has_the_trace_id_that_was_decided() -> None:
    t = tracer("1")
    request = ctx({"traceparent": "00-not-a-trace-01"})  # malformed: ignored, a new trace
    trace = t.start(request)
    assert isinstance(trace, RequestTrace) and trace.recording
    context = trace.span.get_span_context()
    assert context.trace_flags.sampled and t.settings.samples(context.trace_id, None)
    assert t.ids.next == 0  # used up by that span, not by the next one
    headers: dict[str, str] = {}
    trace.inject(headers)
    assert headers["traceparent"].split("-")[1] == f"{context.trace_id:032x}"
    trace.finish(request)


def test_a_clients_sampled_parent_is_continued() -> None:
    parent = {"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    trace = tracer("0").start(ctx(parent))  # ratio 0, but parent-based: the client's flag decides
    assert isinstance(trace, RequestTrace)
    assert f"{trace.span.get_span_context().trace_id:032x}" == TRACE
