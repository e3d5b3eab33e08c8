"""Checks of the Helm chart that need no cluster and no helm binary.

Why: the chart's CRDs must be the repository's `crds/` byte for byte (`make chart-crds`
copies them; other work changes the CRDs, and a stale copy would install an old schema), and
the Grafana dashboard must query series the gateway really exports (a renamed metric would
leave a panel silently empty). Rendering, linting and installing the chart are tested
against the real control plane in tests/e2e/test_chart.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import Collector

from llmplatform.gateway import metrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "llm-platform"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def test_chart_crds_are_the_repository_crds_byte_for_byte() -> None:
    repo = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    assert repo, "no CRDs in crds/"
    fix = "run `make crds` (or `make chart-crds`)"
    assert sorted(chart) == sorted(repo), f"{fix}: the chart's CRD files differ from crds/"
    stale = [name for name in repo if chart[name] != repo[name]]
    assert not stale, f"{fix}: {stale} differ from crds/"


def gateway_series() -> set[str]:
    """Every sample name the gateway's metrics module can export."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter | Gauge | Histogram):
            collector: Collector = value
            for family in collector.describe():
                names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def dashboard_exprs() -> list[str]:
    dash = json.loads((CHART / "dashboards" / "llmplatform.json").read_text())
    exprs = [t["expr"] for panel in dash["panels"] for t in panel.get("targets", [])]
    for var in dash["templating"]["list"]:
        if isinstance(var.get("query"), dict):
            exprs.append(var["query"]["query"])
    return exprs


def referenced_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\bllmplatform_[a-z0-9_]+", expr))


def test_every_metric_in_the_dashboard_is_exported_by_the_gateway() -> None:
    known = gateway_series()
    assert "llmplatform_requests_total" in known and "llmplatform_request_duration_seconds_bucket" in known
    used = set().union(*(referenced_metrics(e) for e in dashboard_exprs()))
    assert used, "the dashboard queries no llmplatform_ metric"
    unknown = sorted(used - known)
    assert not unknown, f"dashboard queries metrics the gateway does not export: {unknown}"


def test_a_misspelt_metric_would_be_caught() -> None:
    assert referenced_metrics("rate(llmplatform_request_total[5m])") - gateway_series() == {
        "llmplatform_request_total"
    }


def test_dashboard_has_the_panels_operators_ask_for() -> None:
    text = "\n".join(dashboard_exprs())
    for needle in (
        "llmplatform_requests_total",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "llmplatform_tokens_total",
        "sum by (tenant) (increase(llmplatform_cost_usd_total",
        "llmplatform_fallbacks_total",
        "llmplatform_rate_limited_total",
        "llmplatform_cache_hits_total",
        "llmplatform_circuit_breaker_state",
    ):
        assert needle in text, f"dashboard lacks {needle}"
