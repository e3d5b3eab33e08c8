"""Condition bookkeeping the operator needs on top of the verdicts, kept pure.

Why here and not in the operator: `lastTransitionTime` must change only when a condition's
status changes, or every reconcile would rewrite status and wake every watcher; that rule is
easy to get wrong and easy to unit-test as a pure function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llmplatform.render.verdicts import ConditionVerdict, ModelVerdict
from llmplatform.render.workloads import child_name


def merge_conditions(
    previous: Sequence[Mapping[str, Any]] | None,
    new: Iterable[ConditionVerdict],
    *,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Status conditions from verdicts: lastTransitionTime kept from `previous` while the
    status is unchanged, else `now` (RFC 3339); conditions the verdicts do not mention are
    kept as they were. Sorted by type."""
    old = {str(c.get("type")): dict(c) for c in previous or []}
    merged = dict(old)
    for verdict in new:
        before = old.get(verdict.type)
        unchanged = before is not None and before.get("status") == verdict.status
        condition: dict[str, Any] = {
            "type": verdict.type,
            "status": verdict.status,
            "reason": verdict.reason,
            "message": verdict.message,
            "lastTransitionTime": before.get("lastTransitionTime", now) if unchanged and before else now,
        }
        if generation is not None:
            condition["observedGeneration"] = generation
        merged[verdict.type] = condition
    return [merged[k] for k in sorted(merged)]


def model_ready_condition(verdict: ModelVerdict, available_replicas: int | None) -> ConditionVerdict:
    """Ready for an LLMModel, given (for a serving model) its Deployment's available replicas.

    The manifests decide Ready for endpoint models; a serving model is Ready when its
    Deployment has at least one available replica, and never while its spec has a problem.
    """
    if not verdict.serving or verdict.ready.status == "False":
        return verdict.ready
    deployment = child_name(verdict.name)
    if available_replicas:
        return ConditionVerdict(
            "Ready",
            "True",
            "DeploymentAvailable",
            f"Deployment {deployment} has {available_replicas} available",
        )
    return ConditionVerdict(
        "Ready", "False", "DeploymentUnavailable", f"Deployment {deployment} has no available replicas"
    )
