"""CEL rules as data, evaluated in-process with the same text the API server runs.

Why: the CRDs carry `x-kubernetes-validations` so `kubectl apply` rejects bad input, but
`llmplatform render` and `llmplatform gateway --manifests` read YAML with no API server in
between. Evaluating the very same rule strings here (with cel-python) keeps one source of
truth: a manifest the offline tools accept is one the API server accepts, and vice versa.
Rules use only standard CEL (macros, `has`, `size`, `matches`, `type`), which both cel-go
and cel-python implement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal

import celpy
from celpy.adapter import json_to_cel

Reason = Literal["FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"]


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry: a CEL expression over `self` and its message."""

    rule: str
    message: str
    field_path: str | None = None
    reason: Reason | None = None

    def to_schema(self) -> dict[str, str]:
        """The entry exactly as it appears in the CRD's OpenAPI schema."""
        out = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            out["fieldPath"] = self.field_path
        if self.reason is not None:
            out["reason"] = self.reason
        return out


class CelRuleError(ValueError):
    """A rule could not be evaluated (a bug in the rule, not in the user's input)."""


@cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def compile_rule(rule: str) -> None:
    """Parse and compile `rule`; raises celpy's parse error when the syntax is wrong."""
    _program(rule)


def holds(rule: CelRule, value: Any) -> bool:
    """Whether `rule` accepts `value` (JSON-shaped data standing for `self`)."""
    return _holds(rule.rule, json.dumps(value, sort_keys=True, separators=(",", ":")))


@lru_cache(maxsize=8192)
def _holds(rule: str, value_json: str) -> bool:
    # Cached on the canonical JSON: the operator re-validates the same unchanged resources on
    # every reconcile, and interpreting CEL in Python costs about a millisecond per rule.
    try:
        result = _program(rule).evaluate({"self": json_to_cel(json.loads(value_json))})
    except Exception as exc:  # celpy raises its own error types for evaluation failures
        raise CelRuleError(f"cannot evaluate CEL rule {rule!r}: {exc}") from exc
    if isinstance(result, Exception):
        raise CelRuleError(f"cannot evaluate CEL rule {rule!r}: {result}")
    return bool(result)
