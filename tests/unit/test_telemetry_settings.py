"""When tracing is on, from the standard OTEL_* variables (contract/telemetry.py): off by
default, on with an OTLP endpoint, and a clear error naming the variable that cannot be honoured."""

from __future__ import annotations

import random

import pytest

from llmplatform.contract.telemetry import SAMPLERS, TelemetryConfigError, tracing_settings

ON = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


def test_off_unless_an_endpoint_is_set() -> None:
    assert tracing_settings({}, "svc") is None
    assert tracing_settings({"OTEL_TRACES_SAMPLER": "always_on"}, "svc") is None
    assert tracing_settings({**ON, "OTEL_SDK_DISABLED": "true"}, "svc") is None
    assert tracing_settings({**ON, "OTEL_TRACES_EXPORTER": "none"}, "svc") is None


def test_on_with_an_endpoint_and_the_defaults() -> None:
    s = tracing_settings(ON, "svc")
    assert s is not None
    assert (s.endpoint, s.sampler, s.ratio, s.service_name) == (
        "http://collector:4318",
        "parentbased_always_on",
        None,
        "svc",
    )
    traces_only = tracing_settings({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/v1/traces"}, "svc")
    assert traces_only is not None and traces_only.endpoint == "https://c/v1/traces"


def test_sampler_ratio_and_service_name() -> None:
    env = {
        **ON,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
        "OTEL_SERVICE_NAME": "gw-eu",
    }
    s = tracing_settings(env, "svc")
    assert s is not None and (s.sampler, s.ratio, s.service_name) == (
        "parentbased_traceidratio",
        0.1,
        "gw-eu",
    )


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
            "OTEL_TRACES_SAMPLER_ARG",
        ),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "must be an http"),
    ],
)
def test_a_variable_that_cannot_be_honoured_is_named(extra: dict[str, str], names: str) -> None:
    with pytest.raises(TelemetryConfigError, match=names):
        tracing_settings({**ON, **extra}, "svc")


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("ratio", ["0", "0.1", "0.5", "1"])
def test_the_sampling_decision_is_the_sdk_samplers(sampler: str, ratio: str) -> None:
    """`samples` (decided once per request, before any span exists) agrees with the SDK's own
    sampler of the same variables on every trace id, for roots and for remote parents."""
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    env = {**ON, "OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": ratio}
    s = tracing_settings(env, "svc")
    assert s is not None
    mp = pytest.MonkeyPatch()
    with mp.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        sdk = _get_from_env_or_default()
    rng = random.Random(7)
    for _ in range(400):
        trace_id = rng.getrandbits(128) or 1
        root = sdk.should_sample(None, trace_id, "x").decision.is_sampled()
        assert s.samples(trace_id, None) is root
        for flag in (True, False):
            remote = SpanContext(trace_id, 1, is_remote=True, trace_flags=TraceFlags(int(flag)))
            parent = set_span_in_context(NonRecordingSpan(remote))
            child = sdk.should_sample(parent, trace_id, "x").decision.is_sampled()
            assert s.samples(trace_id, flag) is child
