"""Condition bookkeeping: transition times move only when a status changes."""

from __future__ import annotations

from llmplatform.render import ConditionVerdict, merge_conditions, model_ready_condition, render
from render_factories import endpoint_model, serving_model

T0, T1 = "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"


def test_new_conditions_get_now() -> None:
    merged = merge_conditions(None, [ConditionVerdict("Ready", "True", "R", "m")], generation=3, now=T0)
    assert merged == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "R",
            "message": "m",
            "lastTransitionTime": T0,
            "observedGeneration": 3,
        }
    ]


def test_transition_time_kept_while_status_is_unchanged() -> None:
    first = merge_conditions(None, [ConditionVerdict("Ready", "False", "A", "a")], generation=1, now=T0)
    same = merge_conditions(first, [ConditionVerdict("Ready", "False", "B", "b")], generation=2, now=T1)
    assert (
        same[0]["lastTransitionTime"] == T0
        and same[0]["reason"] == "B"
        and same[0]["observedGeneration"] == 2
    )
    flipped = merge_conditions(same, [ConditionVerdict("Ready", "True", "C", "c")], generation=2, now=T1)
    assert flipped[0]["lastTransitionTime"] == T1


def test_unmentioned_conditions_are_kept_and_output_is_sorted() -> None:
    previous = [{"type": "Zeta", "status": "True"}]
    merged = merge_conditions(
        previous, [ConditionVerdict("Approved", "True", "R", "m")], generation=None, now=T0
    )
    assert [c["type"] for c in merged] == ["Approved", "Zeta"]
    assert "observedGeneration" not in merged[0]


def test_model_ready_follows_the_deployment_for_serving_models() -> None:
    verdict = render([serving_model("llama")], []).models[0]
    assert model_ready_condition(verdict, 2).status == "True"
    assert model_ready_condition(verdict, 0).reason == "DeploymentUnavailable"
    assert model_ready_condition(verdict, None).status == "False"


def test_model_ready_for_endpoint_models_ignores_replicas() -> None:
    verdict = render([endpoint_model("m1", secret=("nope", "k"))], []).models[0]
    assert model_ready_condition(verdict, 5) == verdict.ready
