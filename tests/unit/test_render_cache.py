"""The parse cache: unchanged API objects are validated once, changed ones again."""

from __future__ import annotations

import copy

from llmplatform.render.inputs import parse_resources
from render_factories import endpoint_model


def test_same_uid_and_resource_version_reuse_the_parsed_object() -> None:
    raw = endpoint_model("m1")
    raw["metadata"].update(uid="u1", resourceVersion="10")
    first = parse_resources([raw]).models["llm-platform/m1"].resource
    assert parse_resources([copy.deepcopy(raw)]).models["llm-platform/m1"].resource is first

    changed = copy.deepcopy(raw)
    changed["metadata"]["resourceVersion"] = "11"
    changed["spec"]["tier"] = "premium"
    again = parse_resources([changed]).models["llm-platform/m1"].resource
    assert again is not first and again.spec.tier == "premium"


def test_manifests_without_resource_version_are_always_parsed() -> None:
    raw = endpoint_model("m2")
    a = parse_resources([raw]).models["llm-platform/m2"].resource
    b = parse_resources([raw]).models["llm-platform/m2"].resource
    assert a is not b and a == b
