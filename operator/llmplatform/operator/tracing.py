"""OpenTelemetry traces of the operator: one span per reconcile pass.

Why: a slow or failing pass (a render error, an API server that refuses writes) shows in the
platform team's tracing backend beside the gateway's request spans, with what the pass did
(resources seen, writes, failures, the config hash it rendered). Off unless an OTLP endpoint
is set, by the same rules as the gateway (contract/telemetry.py); the SDK is imported only
when tracing is on. The provider is built the way the gateway builds its own (gateway and
operator may not import each other, and the contract imports only the standard library).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from llmplatform.contract.telemetry import tracing_settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from llmplatform.operator.engine import PassReport, Snapshot

log = logging.getLogger("llmplatform.operator")

SERVICE_NAME = "llmplatform-operator"


class PassTracer:
    """Spans of reconcile passes, exported over OTLP/HTTP in batches."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.provider = provider
        self.tracer = provider.get_tracer("llmplatform.operator")
        self.error = Status(StatusCode.ERROR)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PassTracer | None:
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
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("tracing on: OTLP to %s, sampler %s", settings.endpoint, settings.sampler)
        return cls(provider)

    def reconcile(
        self, number: int, reconcile: Callable[[Snapshot], PassReport], snap: Snapshot
    ) -> PassReport:
        """Run one pass inside its span: what it saw before, what it did after. A pass that
        raises gets an error status and the exception's type (not its message: a message may
        quote a resource)."""
        attributes = {
            "llmplatform.pass": number,
            "llmplatform.models": len(snap.models),
            "llmplatform.policies": len(snap.policies),
            "llmplatform.tenant_quotas": len(snap.quotas),
            "llmplatform.children": len(snap.children),
        }
        with self.tracer.start_as_current_span(
            "reconcile", attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                report = reconcile(snap)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(self.error)
                raise
            span.set_attributes(
                {
                    "llmplatform.writes": report.writes,
                    "llmplatform.write_failures": report.failures,
                    "llmplatform.config_hash": report.config_hash,
                }
            )
            if report.failures:
                span.set_attribute("error.type", "write_failed")
                span.set_status(self.error)
            return report

    def shutdown(self) -> None:
        self.provider.shutdown()
