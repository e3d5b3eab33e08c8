"""Accept/reject cases for the API types, which evaluate the CRDs' CEL rules in-process.

The same files were checked against the API server's own validation code (defaulting,
pruning, OpenAPI, list types and CEL from k8s.io/apiextensions-apiserver v0.36.3), with the
same accept/reject outcome for every document, so offline loading agrees with `kubectl apply`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from llmplatform.api import KINDS_BY_NAME

CASES = Path(__file__).parent / "schema_cases"
REASON = "test.llmplatform.io/rejected-because"


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((CASES / name).read_text()) if d]


def case_id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name'][:40]}"


@pytest.mark.parametrize("doc", docs("accept.yaml"), ids=case_id)
def test_accepted(doc: dict[str, Any]) -> None:
    KINDS_BY_NAME[doc["kind"]].resource.model_validate(doc)


@pytest.mark.parametrize("doc", docs("reject.yaml"), ids=case_id)
def test_rejected_with_a_clear_message(doc: dict[str, Any]) -> None:
    expected = doc["metadata"]["annotations"][REASON]
    with pytest.raises(ValidationError) as info:
        KINDS_BY_NAME[doc["kind"]].resource.model_validate(doc)
    assert expected in str(info.value)


def test_examples_are_accepted() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    count = 0
    for path in sorted(examples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in KINDS_BY_NAME:
                KINDS_BY_NAME[doc["kind"]].resource.model_validate(doc)
                count += 1
    assert count == 6


def test_defaults_match_the_spec() -> None:
    model = KINDS_BY_NAME["LLMModel"].resource.model_validate(
        {
            "apiVersion": "llmplatform.io/v1alpha1",
            "kind": "LLMModel",
            "metadata": {"name": "m"},
            "spec": {"tier": "standard", "contextWindow": 10, "serving": {"image": "x"}},
        }
    )
    spec = model.to_wire()["spec"]
    assert spec["provider"] == "openai"
    assert spec["capabilities"] == ["chat", "completions"]
    assert spec["maxDataClassification"] == "internal"
    assert spec["serving"]["port"] == 8000
    assert spec["serving"]["replicas"] == {"min": 1, "max": 1}
    policy = KINDS_BY_NAME["RoutingPolicy"].resource.model_validate(
        {
            "apiVersion": "llmplatform.io/v1alpha1",
            "kind": "RoutingPolicy",
            "metadata": {"name": "p"},
            "spec": {"tiers": [{"name": "standard", "models": ["m"]}]},
        }
    )
    pspec = policy.to_wire()["spec"]
    assert pspec["scoring"] == {"availability": 0.4, "cost": 0.3, "latency": 0.2, "priority": 0.1}
    assert pspec["dataGovernance"]["piiRedaction"] is True
    assert pspec["default"] is False
