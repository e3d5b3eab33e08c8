"""`--serving-overrides` (chart value operator.servingOverrides): every self-hosted model's pod
served with another image and resources, for clusters that cannot run the real servers."""

from __future__ import annotations

import pytest

from llmplatform.render import render
from llmplatform.render.workloads import parse_serving_overrides
from render_factories import serving_model


def pod_spec(overrides: dict[str, object] | None) -> dict[str, object]:
    model = serving_model("llama", replicas=(1, 1))
    model["spec"]["serving"]["nodeSelector"] = {"nvidia.com/gpu.present": "true"}
    model["spec"]["serving"]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    deployment = render([model], [], serving_overrides=overrides).objects[0]
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_overrides_replace_image_and_args_and_empty_values_remove_fields() -> None:
    before = pod_spec(None)
    assert before["nodeSelector"] and before["containers"][0]["resources"]  # type: ignore[index]
    after = pod_spec(
        parse_serving_overrides(
            '{"image": "mock:1", "args": ["mock-upstream", "--port=8000"],'
            ' "resources": {}, "nodeSelector": {}}'
        )
    )
    container = after["containers"][0]  # type: ignore[index]
    assert container["image"] == "mock:1"
    assert container["args"] == ["mock-upstream", "--port=8000"]
    assert "resources" not in container and "nodeSelector" not in after
    # what was not overridden stays: the port and the readiness probe
    assert container["ports"] == before["containers"][0]["ports"]  # type: ignore[index]
    assert container["readinessProbe"] == before["containers"][0]["readinessProbe"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "must be a JSON object"),
        ('{"replicas": 1}', "unknown field 'replicas'"),
        ('{"image": ""}', "image must be a non-empty JSON string"),
        ('{"args": ["a", 1]}', "args must be a list of strings"),
        ('{"resources": []}', "resources must be a JSON object"),
        ("{", "is not JSON"),
    ],
)
def test_bad_overrides_are_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_serving_overrides(text)
