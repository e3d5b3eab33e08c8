"""The operations docs and the example alerts name only metrics and files that exist.

Why: alert rules on a misspelt metric never fire and never fail; a doc linking a moved file
misleads. The exposed names are taken from the live prometheus_client collectors of the
gateway and the operator, so renaming a metric without updating the rules fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import llmplatform.gateway.metrics as gateway_metrics
import llmplatform.operator.handlers as operator_handlers
import llmplatform.operator.kube as operator_kube

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy/prometheus/llmplatform-alerts.yaml"
DOCS = [REPO / "docs/operations.md", REPO / "docs/security.md", REPO / "docs/gateway.md"]
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed() -> set[str]:
    names = set()
    for module in (gateway_metrics, operator_handlers, operator_kube):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                names |= {value._name + s for s in SUFFIXES[value._type]}
    return names


def mentioned(text: str) -> set[str]:
    return set(re.findall(r"\bllmplatform_[a-z0-9_]*[a-z0-9]\b", text))


def test_the_collectors_are_found() -> None:
    names = exposed()
    assert {"llmplatform_requests_total", "llmplatform_operator_passes_total"} <= names
    assert "llmplatform_request_duration_seconds_bucket" in names


@pytest.mark.parametrize("path", [ALERTS, *DOCS], ids=lambda p: p.name)
def test_every_metric_named_exists(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path} is missing")
    text = path.read_text()
    # the gateway guide writes names without the prefix in its table; check what it spells out
    unknown = mentioned(text) - exposed()
    assert not unknown, f"{path.name} names metrics nobody exports: {sorted(unknown)}"


def _rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    return [r for g in doc["spec"]["groups"] for r in g["rules"]]


def test_alert_rules_are_well_formed() -> None:
    rules = _rules()
    assert len({r["alert"] for r in rules}) == len(rules) >= 10
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), rule["alert"]
        assert mentioned(expr), f"{rule['alert']} uses no llmplatform metric"
        # counters are only meaningful through rate()/increase()
        for name in mentioned(expr):
            if name.endswith(("_total", "_bucket")):
                assert re.search(rf"(rate|increase)\({re.escape(name)}", expr) or "absent(" in expr, (
                    rule["alert"],
                    name,
                )


def test_every_alert_is_listed_in_the_operations_guide() -> None:
    guide = (REPO / "docs/operations.md").read_text()
    for rule in _rules():
        assert f"| {rule['alert']} |" in guide, rule["alert"]


@pytest.mark.parametrize("path", [p for p in DOCS if p.name != "gateway.md"], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"{path} is missing")
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
        assert (path.parent / target).exists(), f"{path.name} links {target}"
