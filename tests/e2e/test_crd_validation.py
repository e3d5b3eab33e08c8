"""The CRDs in `crds/` on a real API server: bad input is rejected there, naming the field.

Why e2e as well as the unit schema tests: the unit tests evaluate the same rules through the
pydantic types; only the API server proves that `kubectl apply` of a bad resource fails with a
message a user can act on (structural schema, enums, minimums, CEL rules, strict field
validation), and that the examples apply cleanly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from llmplatform_testing import ROOT
from llmplatform_testing.controlplane import Cluster

CASES = ROOT / "tests/unit/schema_cases"
PLURALS = {"LLMModel": "llmmodels", "RoutingPolicy": "routingpolicies", "TenantQuota": "tenantquotas"}


def _cases(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((CASES / name).read_text()) if d]


def _create(cluster: Cluster, doc: dict[str, Any], namespace: str, dry_run: bool = True) -> Any:
    body = {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
    body["metadata"].pop("annotations", None)
    return client.CustomObjectsApi(cluster.api()).create_namespaced_custom_object(
        "llmplatform.io",
        "v1alpha1",
        namespace,
        PLURALS[doc["kind"]],
        body,
        dry_run="All" if dry_run else None,
        field_validation="Strict",  # what kubectl apply sends by default
    )


REJECT = _cases("reject.yaml")


def test_at_least_ten_distinct_invalid_resources() -> None:
    assert len({d["metadata"]["name"] for d in REJECT}) >= 10


@pytest.mark.parametrize("doc", REJECT, ids=[d["metadata"]["name"][:40] for d in REJECT])
def test_invalid_resource_is_rejected_naming_the_field(
    cluster: Cluster, crds: None, namespace: str, doc: dict
) -> None:
    field = doc["metadata"]["annotations"]["test.llmplatform.io/field"]
    with pytest.raises(ApiException) as err:
        _create(cluster, doc, namespace)
    assert err.value.status in (400, 422), err.value.body
    message = json.loads(err.value.body)["message"]
    assert field in message, f"the API server's message does not name {field!r}: {message}"


@pytest.mark.parametrize("doc", _cases("accept.yaml"), ids=lambda d: d["metadata"]["name"])
def test_valid_resource_is_accepted(cluster: Cluster, crds: None, namespace: str, doc: dict) -> None:
    created = _create(cluster, doc, namespace)
    assert created["metadata"]["name"] == doc["metadata"]["name"]


def test_defaults_are_applied_by_the_api_server(cluster: Cluster, crds: None, namespace: str) -> None:
    doc = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "LLMModel",
        "metadata": {"name": "defaults"},
        "spec": {"tier": "standard", "contextWindow": 4096, "serving": {"image": "x"}},
    }
    created = _create(cluster, doc, namespace, dry_run=False)
    spec = created["spec"]
    assert spec["provider"] == "openai"
    assert spec["maxDataClassification"] == "internal"
    assert spec["capabilities"] == ["chat", "completions"]
    assert spec["serving"]["port"] == 8000


def test_examples_apply_cleanly_and_show_in_the_category(cluster: Cluster, crds: None) -> None:
    examples = str(ROOT / "examples")
    try:
        out = cluster.kubectl("apply", "-f", examples)
        assert "llmmodel.llmplatform.io/gpt-4o-mini created" in out
        assert "tenantquota.llmplatform.io/team-a created" in out
        listed = set(cluster.kubectl("get", "llmplatform", "-A", "-o", "name").split())
        assert listed >= {
            "llmmodel.llmplatform.io/claude-sonnet",
            "llmmodel.llmplatform.io/gpt-4o-mini",
            "llmmodel.llmplatform.io/llama-3-8b",
            "routingpolicy.llmplatform.io/default",
            "tenantquota.llmplatform.io/team-a",
            "tenantquota.llmplatform.io/team-b",
        }
    finally:
        cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", examples, check=False)


def test_kubectl_explain_teaches_the_api(cluster: Cluster, crds: None) -> None:
    out = cluster.kubectl("explain", "llmmodel.spec.serving.replicas")
    assert "FIELD: replicas" in out and "min" in out and "max" in out
    assert "DESCRIPTION:" in out and len(out.split("DESCRIPTION:")[1].strip()) > 20
    for kind in ("llmm", "llmrp", "tq"):  # short names resolve
        assert cluster.kubectl("get", kind, "-A", "-o", "name", check=True) is not None


def test_printer_columns(cluster: Cluster, crds: None, namespace: str) -> None:
    doc = {
        "apiVersion": "llmplatform.io/v1alpha1",
        "kind": "LLMModel",
        "metadata": {"name": "cols"},
        "spec": {"tier": "premium", "contextWindow": 4096, "endpoint": {"url": "https://x.example/v1"}},
    }
    _create(cluster, doc, namespace, dry_run=False)
    header = cluster.kubectl("get", "llmm", "-n", namespace).splitlines()[0].split()
    assert header == ["NAME", "TIER", "PROVIDER", "READY", "ENDPOINT", "AGE"]


def test_crd_files_are_the_ones_installed(cluster: Cluster, crds: None) -> None:
    api = client.ApiextensionsV1Api(cluster.api())
    for path in sorted(Path(ROOT / "crds").glob("*.yaml")):
        want = yaml.safe_load(path.read_text())
        have = api.read_custom_resource_definition(want["metadata"]["name"])
        assert have.spec.names.categories == ["llmplatform"]
        assert have.spec.versions[0].subresources.status is not None
