"""The operator's "does the live object already hold what we render" check.

Why unit-tested: it decides every write. Too strict and the operator writes on every pass
(and a restart is not write-free); too loose and drift is never repaired.
"""

from __future__ import annotations

from llmplatform.operator.engine import contains, first_difference


def test_subset_with_server_defaults_is_no_drift() -> None:
    desired = {"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "s", "image": "a"}]}}}}
    live = {
        "metadata": {"resourceVersion": "5"},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "template": {
                "spec": {"containers": [{"name": "s", "image": "a", "imagePullPolicy": "IfNotPresent"}]}
            },
        },
        "status": {"availableReplicas": 1},
    }
    assert contains(live, desired)
    assert first_difference(live, desired) is None


def test_changed_scalar_list_length_and_missing_key_are_drift() -> None:
    desired = {"spec": {"template": {"spec": {"containers": [{"name": "s", "image": "a"}]}}}}
    edited = {"spec": {"template": {"spec": {"containers": [{"name": "s", "image": "evil"}]}}}}
    extra = {"spec": {"template": {"spec": {"containers": [{"name": "s", "image": "a"}, {"name": "x"}]}}}}
    assert not contains(edited, desired)
    assert first_difference(edited, desired).startswith(".spec.template.spec.containers[0].image")
    assert not contains(extra, desired)
    assert not contains({"spec": {}}, desired)


def test_quantities_compare_by_value_and_none_means_absent() -> None:
    assert contains({"cpu": "500m", "memory": "1073741824"}, {"cpu": "0.5", "memory": "1Gi"})
    assert not contains({"cpu": "600m"}, {"cpu": "0.5"})
    assert contains({"a": 1}, {"b": None})
    assert not contains({"b": 2}, {"b": None})
    assert contains({"n": 2.0}, {"n": 2}) and not contains({"f": 1}, {"f": True})
    assert not contains({"s": "abc"}, {"s": "abd"})
