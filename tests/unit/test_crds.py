"""The generated CRDs: in sync with the types, and shaped so the API server accepts them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmplatform.api import KINDS
from llmplatform.api.base import K8sModel
from llmplatform.api.cel import compile_rule
from llmplatform.api.crdgen import drift, generated_files, main

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"


def load(kind: str) -> dict[str, Any]:
    info = next(k for k in KINDS if k.kind == kind)
    return yaml.safe_load((CRDS / info.file_name).read_text())


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


ALL_KINDS = [k.kind for k in KINDS]


def test_crds_match_the_generator() -> None:
    assert drift(CRDS) == [], "run `python -m llmplatform.api.crdgen` to regenerate crds/"


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--check", "--out", str(tmp_path)]) == 0
    victim = tmp_path / "llmplatform.io_llmmodels.yaml"
    victim.write_text(victim.read_text().replace("maxLength: 253", "maxLength: 254", 1))
    (tmp_path / "llmplatform.io_leftovers.yaml").write_text("{}\n")
    assert main(["--check", "--out", str(tmp_path)]) == 1
    problems = drift(tmp_path)
    assert any("llmmodels" in p and "differs" in p for p in problems)
    assert any("leftovers" in p for p in problems)


def test_generation_is_deterministic() -> None:
    assert generated_files() == generated_files()


def test_file_names() -> None:
    assert sorted(generated_files()) == [
        "llmplatform.io_llmmodels.yaml",
        "llmplatform.io_routingpolicies.yaml",
        "llmplatform.io_tenantquotas.yaml",
    ]


@pytest.mark.parametrize(
    ("kind", "short", "columns"),
    [
        ("LLMModel", "llmm", ["Tier", "Provider", "Ready", "Endpoint", "Age"]),
        ("RoutingPolicy", "llmrp", ["Default", "Default Tier", "Ready", "Age"]),
        ("TenantQuota", "tq", ["Organization", "Approved", "Ready", "Age"]),
    ],
)
def test_names_scope_columns_and_status(kind: str, short: str, columns: list[str]) -> None:
    crd = load(kind)
    spec = crd["spec"]
    assert spec["group"] == "llmplatform.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["shortNames"] == [short]
    assert spec["names"]["categories"] == ["llmplatform"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
    assert all(c["description"] for c in version["additionalPrinterColumns"])


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_property_has_a_description(kind: str) -> None:
    missing = [
        f"{path}.{name}"
        for path, node in walk(schema_of(load(kind)))
        for name, sub in (node.get("properties") or {}).items()
        if not sub.get("description") and f"{path}.{name}" != ".metadata"
    ]
    assert missing == []


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_schema_is_structural(kind: str) -> None:
    """No constructs the API server rejects in a structural schema."""
    for path, node in walk(schema_of(load(kind))):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        ), path
        assert not ("properties" in node and "additionalProperties" in node), path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path
        if "default" in node:
            assert node["default"] is not None, path


def test_conditions_are_a_map_keyed_by_type() -> None:
    for kind in ALL_KINDS:
        conditions = schema_of(load(kind))["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        fields = set(conditions["items"]["properties"])
        assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= fields


def test_kind_specific_status_fields() -> None:
    def status(kind: str) -> set[str]:
        return set(schema_of(load(kind))["properties"]["status"]["properties"])

    assert {"endpoint", "replicas", "readyReplicas", "observedGeneration"} <= status("LLMModel")
    assert {"granted", "usage", "apiKeySecrets", "observedGeneration"} <= status("TenantQuota")
    usage = schema_of(load("TenantQuota"))["properties"]["status"]["properties"]["usage"]["properties"]
    assert set(usage) == {"requestsThisMinute", "tokensToday", "costThisMonthUSD", "day"}


def cel_rules() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for kind in ALL_KINDS:
        for path, node in walk(schema_of(load(kind))):
            for rule in node.get("x-kubernetes-validations", []):
                yield kind, path, node, rule


def test_there_are_cel_rules_for_the_cross_field_constraints() -> None:
    messages = " | ".join(rule["message"] for _, _, _, rule in cel_rules())
    for expected in (
        "exactly one of endpoint or serving",
        "replicas.min must be less than or equal to replicas.max",
        "defaultTier must be the name of one of the tiers",
        "acrossTiers entry must be the name of one of the tiers",
    ):
        assert expected in messages


def test_every_cel_rule_compiles_and_has_a_message() -> None:
    rules = list(cel_rules())
    assert len(rules) >= 8
    for kind, path, _, rule in rules:
        assert rule["message"].strip(), (kind, path)
        compile_rule(rule["rule"])
        if "fieldPath" in rule:
            assert rule["fieldPath"].startswith("."), (kind, path)


# The API server bounds these itself (they are part of every object, not of our schema).
ROOT_FIELDS = (".apiVersion", ".kind")


def unbounded(node: dict[str, Any], path: str) -> Iterator[str]:
    exempt = {path + f for f in ROOT_FIELDS}
    for sub_path, sub in walk(node, path):
        if sub.get("x-kubernetes-preserve-unknown-fields") or sub_path in exempt:
            continue
        if sub.get("type") == "array" and "maxItems" not in sub:
            yield sub_path
        if sub.get("type") == "string" and not {"maxLength", "enum", "format"} & set(sub):
            yield sub_path
        is_map = sub.get("type") == "object" and isinstance(sub.get("additionalProperties"), dict)
        if is_map and "maxProperties" not in sub:
            yield sub_path


def test_everything_under_a_cel_rule_is_bounded() -> None:
    """The API server estimates each rule's worst-case cost from maxItems/maxLength; an
    unbounded list or string under a rule can push it over the budget."""
    problems = [p for kind, path, node, _ in cel_rules() for p in unbounded(node, f"{kind}{path}")]
    assert problems == []


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_all_lists_strings_and_maps_are_bounded(kind: str) -> None:
    assert list(unbounded(schema_of(load(kind)), kind)) == []


def nested_models(model: type[K8sModel]) -> Iterator[type[K8sModel]]:
    for field in model.model_fields.values():
        for arg in (*getattr(field.annotation, "__args__", ()), field.annotation):
            if isinstance(arg, type) and issubclass(arg, K8sModel):
                yield arg
                yield from nested_models(arg)


def test_object_defaults_are_the_fully_defaulted_objects() -> None:
    """The API server validates a default against the CEL rules as written, so an object
    default must already contain its nested defaults."""
    for info in KINDS:
        for model in {info.spec, *nested_models(info.spec)}:
            for name, field in model.model_fields.items():
                extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
                if field.default_factory is not None and isinstance(extra.get("default"), dict):
                    value = field.default_factory()  # type: ignore[call-arg]
                    assert extra["default"] == value.to_wire(), f"{model.__name__}.{name}"
