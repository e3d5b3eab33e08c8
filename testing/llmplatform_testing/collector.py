"""A real OpenTelemetry Collector on loopback for the tracing tests: OTLP/HTTP in, a file out.

Why a real one: what the tests check is what an SRE's collector receives from the gateway and
the operator (span names, attributes, parent/child links, that no content leaks). The binary is
built from the collector's Go modules by tests/e2e/controlplane/collector_build.py and cached
like the control plane; this module starts it on a free port and reads what its file exporter
wrote, as plain dicts.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from llmplatform_testing import scripts
from llmplatform_testing.controlplane import BED_DIR
from llmplatform_testing.procs import Proc, free_port, wait_for

if TYPE_CHECKING:
    import collector_build
else:
    collector_build: ModuleType = scripts.load(BED_DIR / "collector_build.py", "collector_build")

CONFIG = """\
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  file:
    path: {path}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
"""


@dataclass
class Span:
    """One span as the collector wrote it (ids in hex, attribute values unwrapped)."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 0
    """0 unset, 1 ok, 2 error (OTLP's StatusCode)."""

    def event(self, name: str) -> list[dict[str, Any]]:
        """The attributes of every event called `name`."""
        return [attrs for n, attrs in self.events if n == name]


def _value(v: dict[str, Any]) -> Any:
    if "intValue" in v:
        return int(v["intValue"])  # OTLP JSON writes 64-bit integers as strings
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    return v


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items or []}


def _span(service: str, s: dict[str, Any]) -> Span:
    return Span(
        service=service,
        name=s["name"],
        kind=int(s.get("kind", 0)),
        trace_id=s["traceId"],
        span_id=s["spanId"],
        parent_id=s.get("parentSpanId", ""),
        attributes=_attrs(s.get("attributes")),
        events=[(e["name"], _attrs(e.get("attributes"))) for e in s.get("events", [])],
        status=int(s.get("status", {}).get("code", 0) or 0),
    )


class Collector:
    """The collector process; `endpoint` is what OTEL_EXPORTER_OTLP_ENDPOINT should say."""

    def __init__(self, tmp: Path) -> None:
        binary = collector_build.ensure_built()
        self.port = free_port()
        self.path = tmp / "collector-spans.jsonl"
        config = tmp / "collector.yaml"
        config.write_text(CONFIG.format(port=self.port, path=self.path))
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = Proc([str(binary), f"--config={config}"], tmp / "collector.log")
        wait_for(self._listening, timeout=60, what="the collector's OTLP receiver", interval=0.1)

    def _listening(self) -> bool:
        if self.proc.popen.poll() is not None:
            raise RuntimeError(f"the collector exited:\n{self.proc.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def raw(self) -> str:
        """Everything the file exporter wrote so far."""
        return self.path.read_text(errors="replace") if self.path.exists() else ""

    def spans(self) -> list[Span]:
        found: list[Span] = []
        for line in self.raw().splitlines():
            if not line.strip():
                continue
            for rs in json.loads(line).get("resourceSpans", []):
                service = _attrs(rs.get("resource", {}).get("attributes")).get("service.name", "")
                for ss in rs.get("scopeSpans", []):
                    found += [_span(service, s) for s in ss.get("spans", [])]
        return found

    def wait_spans(self, where: Any, count: int = 1, timeout: float = 60) -> list[Span]:
        """At least `count` spans for which `where(span)` holds (the exporter batches: spans
        arrive a moment after the request)."""

        def found() -> list[Span]:
            got = [s for s in self.spans() if where(s)]
            return got if len(got) >= count else []

        return wait_for(found, timeout=timeout, what=f"{count} matching span(s)", interval=0.2)

    def stop(self) -> None:
        self.proc.stop()
