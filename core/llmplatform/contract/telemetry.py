"""When the gateway and the operator export traces, read from the standard `OTEL_*` variables.

Why here: both processes follow the same rules (tracing is off unless an OTLP endpoint is set;
the sampler and its ratio are checked before anything starts) and neither may import the
other, so the rules live in the contract, as plain functions of the environment. Building the
OpenTelemetry SDK objects from them is each process's own `tracing.py`, which imports the SDK
only when tracing is on: a process that does not trace never loads it (the contract itself may
import only pydantic and the standard library, so the SDK calls cannot be shared from here).

The sampling decision is here too (`TracingSettings.samples`), as the SDK's samplers define it:
the gateway decides once at a request's start, before creating any span object, so a request
the sampler drops costs a random number and a comparison (issue #17: tracing at ratio 0.1 must
cost at most 10% of the throughput).

Why off unless an endpoint is set: the OpenTelemetry default endpoint is localhost:4318, where
a pod usually has nothing listening; exporting there would cost every request a span and every
few seconds a failed connection, for nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
SUPPORTED_PROTOCOL = "http/protobuf"
SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
RATIO_SAMPLERS = frozenset({"traceidratio", "parentbased_traceidratio"})
TRACE_ID_LIMIT = (1 << 64) - 1
"""A ratio sampler looks at a trace id's low 64 bits (as the SDK's TraceIdRatioBased does)."""


class TelemetryConfigError(ValueError):
    """An `OTEL_*` variable the process cannot honour (named in the message)."""


@dataclass(frozen=True)
class TracingSettings:
    """What the environment asks for, checked (the SDK reads the same variables itself)."""

    endpoint: str
    sampler: str
    ratio: float | None
    """The sampling ratio of a ratio sampler, else None."""
    service_name: str
    bound: int = field(init=False, repr=False)
    """A ratio sampler keeps a trace whose id's low 64 bits are below this."""

    def __post_init__(self) -> None:
        ratio = 1.0 if self.sampler in ("always_on", "parentbased_always_on") else self.ratio or 0.0
        # the SDK's TraceIdRatioBased.get_bound_for_rate, so both agree on every trace id
        object.__setattr__(self, "bound", round(ratio * (TRACE_ID_LIMIT + 1)))

    def samples(self, trace_id: int, parent_sampled: bool | None) -> bool:
        """Whether a span of `trace_id` is recorded and exported: `parent_sampled` is the
        sampled flag of a valid parent span context (a client's `traceparent`), None for a
        root. `parentbased_*` follow the parent when there is one; the others decide alone
        (always_on, always_off, or the trace id against the ratio)."""
        if parent_sampled is not None and self.sampler.startswith("parentbased_"):
            return parent_sampled
        return (trace_id & TRACE_ID_LIMIT) < self.bound


def tracing_settings(env: Mapping[str, str], default_service: str) -> TracingSettings | None:
    """None when tracing is off, else the checked settings; raises TelemetryConfigError naming
    the variable when one is set to something the process cannot honour (a clear error at
    start-up instead of a sampler silently falling back to "sample everything")."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    endpoint = next((env[v].strip() for v in ENDPOINT_VARS if env.get(v, "").strip()), None)
    if endpoint is None:
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if exporter != "otlp":
        raise TelemetryConfigError(f"OTEL_TRACES_EXPORTER={exporter!r}: only 'otlp' (or 'none') is supported")
    if not endpoint.startswith(("http://", "https://")):
        raise TelemetryConfigError(f"OTLP endpoint {endpoint!r} must be an http:// or https:// URL")
    for var in PROTOCOL_VARS:
        protocol = env.get(var, "").strip()
        if protocol:
            if protocol != SUPPORTED_PROTOCOL:
                raise TelemetryConfigError(
                    f"{var}={protocol!r}: only {SUPPORTED_PROTOCOL!r} (OTLP over HTTP, port 4318)"
                    " is supported"
                )
            break
    sampler = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if sampler not in SAMPLERS:
        raise TelemetryConfigError(f"OTEL_TRACES_SAMPLER={sampler!r}: one of {', '.join(sorted(SAMPLERS))}")
    ratio = None
    if sampler in RATIO_SAMPLERS:
        raw = env.get("OTEL_TRACES_SAMPLER_ARG", "1.0").strip() or "1.0"
        try:
            ratio = float(raw)
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise TelemetryConfigError(f"OTEL_TRACES_SAMPLER_ARG={raw!r}: a ratio from 0 to 1")
    service = env.get("OTEL_SERVICE_NAME", "").strip() or default_service
    return TracingSettings(endpoint, sampler, ratio, service)
