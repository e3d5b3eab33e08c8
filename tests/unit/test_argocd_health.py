"""The Argo CD health checks (deploy/argocd/health/*.lua) on hand-written statuses.

The Lua runs in Lua 5.1 through lupa, as Argo CD's gopher-lua would run it, from the committed
argocd-cm snippet (what users install). tests/e2e/test_argocd.py runs the same scripts on
statuses the operator really wrote; here are the edge cases a live cluster rarely shows, and a
guard that every condition reason the rendering core can write has a verdict below.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmplatform_testing import scripts

REPO = Path(__file__).resolve().parents[2]
health = scripts.argocd_health()

KEYS = {
    "LLMModel": "llmplatform.io_LLMModel",
    "RoutingPolicy": "llmplatform.io_RoutingPolicy",
    "TenantQuota": "llmplatform.io_TenantQuota",
}


def obj(
    generation: int | None = 3, observed: int | None = 3, **conditions: tuple[str, str]
) -> dict[str, Any]:
    """An object at `generation` whose status observed `observed` and has `conditions`
    (type -> (status, reason)); `observed=None` and no conditions: no status at all."""
    meta: dict[str, Any] = {"name": "x", "namespace": "ns"}
    if generation is not None:
        meta["generation"] = generation
    out: dict[str, Any] = {"metadata": meta, "spec": {}}
    if observed is None and not conditions:
        return out
    status: dict[str, Any] = {
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": f"{r} message", "lastTransitionTime": "x"}
            for t, (s, r) in conditions.items()
        ]
    }
    if observed is not None:
        status["observedGeneration"] = observed
    out["status"] = status
    return out


def verdict(kind: str, body: dict[str, Any]) -> dict[str, str]:
    return health.evaluate(KEYS[kind], body)


# --------------------------------------------------------------------------- the snippet


def test_snippet_is_assembled_from_the_lua_sources() -> None:
    assert health.main(["--check"]) == 0, "run `make argocd` (python deploy/argocd/health.py)"


def test_check_mode_reports_a_stale_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "argocd-cm-health.yaml"
    stale.write_text(health.render().replace("Degraded", "Healthy"))
    monkeypatch.setattr(health, "SNIPPET", stale)
    assert health.main(["--check"]) == 1
    assert health.main([]) == 0
    assert health.main(["--check"]) == 0


def test_snippet_is_an_argocd_cm_with_one_key_per_kind() -> None:
    cm = yaml.safe_load(health.SNIPPET.read_text())
    assert (cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]) == (
        "ConfigMap",
        "argocd-cm",
        "argocd",
    )
    crd_keys = set()
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crd_keys.add(f"resource.customizations.health.{crd['spec']['group']}_{crd['spec']['names']['kind']}")
    assert set(cm["data"]) == crd_keys | {"resource.customizations.health.argoproj.io_Application"}
    used = {name for name, _ in health.CHECKS.values()} | {"common.lua"}
    assert {p.name for p in health.SOURCES.glob("*.lua")} == used, "a .lua file is not assembled"


# --------------------------------------------------------------------------- before the operator has spoken


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_no_status_yet_is_progressing(kind: str) -> None:
    v = verdict(kind, obj(observed=None))
    assert v["status"] == "Progressing"
    assert "operator" in v["message"]


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_status_for_an_older_generation_is_progressing_even_if_it_said_healthy(kind: str) -> None:
    healthy = {"Ready": ("True", "Configured"), "Approved": ("True", "WithinCeilings")}
    assert verdict(kind, obj(3, 3, **healthy))["status"] == "Healthy"
    v = verdict(kind, obj(4, 3, **healthy))
    assert v == {
        "status": "Progressing",
        "message": "Waiting for the llmplatform operator to observe generation 4 (status describes 3)",
    }
    degraded = {"Ready": ("False", "InvalidSpec"), "Approved": ("False", "InvalidSpec")}
    assert verdict(kind, obj(4, 3, **degraded))["status"] == "Progressing"


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_status_without_observed_generation_or_conditions_is_progressing(kind: str) -> None:
    assert verdict(kind, obj(2, None, Ready=("True", "Configured")))["status"] == "Progressing"
    assert verdict(kind, obj(2, 2))["status"] == "Progressing"


def test_quota_needs_both_conditions() -> None:
    v = verdict("TenantQuota", obj(Ready=("True", "Configured")))
    assert v["status"] == "Progressing" and "Approved" in v["message"]


def test_object_without_generation_is_judged_by_its_conditions() -> None:
    assert verdict("LLMModel", obj(None, 1, Ready=("True", "Configured")))["status"] == "Healthy"


# --------------------------------------------------------------------------- every reason the operator writes

# (kind, {type: (status, reason)}, expected verdict)
CASES: list[tuple[str, dict[str, tuple[str, str]], str]] = [
    ("LLMModel", {"Ready": ("True", "Configured")}, "Healthy"),
    ("LLMModel", {"Ready": ("True", "DeploymentAvailable")}, "Healthy"),
    ("LLMModel", {"Ready": ("Unknown", "DeploymentPending")}, "Progressing"),
    ("LLMModel", {"Ready": ("False", "DeploymentUnavailable")}, "Progressing"),
    ("LLMModel", {"Ready": ("False", "SecretNotFound")}, "Degraded"),
    ("LLMModel", {"Ready": ("False", "SecretKeyNotFound")}, "Degraded"),
    ("LLMModel", {"Ready": ("False", "SecretKeyEmpty")}, "Degraded"),
    ("LLMModel", {"Ready": ("False", "CredentialsNotMounted")}, "Degraded"),
    ("LLMModel", {"Ready": ("False", "InvalidSpec")}, "Degraded"),
    ("LLMModel", {"Ready": ("False", "InvalidCABundle")}, "Degraded"),
    ("RoutingPolicy", {"Ready": ("True", "AllModelsReady")}, "Healthy"),
    ("RoutingPolicy", {"Ready": ("False", "MissingModels")}, "Degraded"),
    ("RoutingPolicy", {"Ready": ("False", "UnusableModels")}, "Degraded"),
    ("RoutingPolicy", {"Ready": ("False", "DefaultConflict")}, "Degraded"),
    ("RoutingPolicy", {"Ready": ("False", "PlaintextNotProtected")}, "Degraded"),
    ("RoutingPolicy", {"Ready": ("False", "InvalidSpec")}, "Degraded"),
    ("RoutingPolicy", {"Ready": ("Unknown", "Whatever")}, "Progressing"),
    ("TenantQuota", {"Approved": ("True", "WithinCeilings"), "Ready": ("True", "Configured")}, "Healthy"),
    (
        "TenantQuota",
        {"Approved": ("True", "WithinCeilings"), "Ready": ("False", "KeysPending")},
        "Progressing",
    ),
    (
        "TenantQuota",
        {"Approved": ("True", "WithinCeilings"), "Ready": ("False", "DuplicateApiKey")},
        "Degraded",
    ),
    ("TenantQuota", {"Approved": ("False", "ExceedsCeiling"), "Ready": ("False", "NotAdmitted")}, "Degraded"),
    (
        "TenantQuota",
        {"Approved": ("False", "ExceedsCeiling"), "Ready": ("True", "PreviousGrantInForce")},
        "Degraded",
    ),
    (
        "TenantQuota",
        {"Approved": ("False", "TierNotInPolicy"), "Ready": ("False", "NotAdmitted")},
        "Degraded",
    ),
    (
        "TenantQuota",
        {"Approved": ("False", "PolicyNotFound"), "Ready": ("False", "PolicyNotFound")},
        "Degraded",
    ),
    (
        "TenantQuota",
        {"Approved": ("False", "PolicyNotFound"), "Ready": ("True", "PreviousGrantInForce")},
        "Degraded",
    ),
    (
        "TenantQuota",
        {"Approved": ("False", "ProviderCredential"), "Ready": ("False", "ProviderCredential")},
        "Degraded",
    ),
    ("TenantQuota", {"Approved": ("False", "InvalidSpec"), "Ready": ("False", "InvalidSpec")}, "Degraded"),
    ("TenantQuota", {"Approved": ("Unknown", "Pending"), "Ready": ("False", "NotAdmitted")}, "Progressing"),
]


@pytest.mark.parametrize(("kind", "conditions", "expected"), CASES)
def test_reason_maps_to_verdict(kind: str, conditions: dict[str, tuple[str, str]], expected: str) -> None:
    v = verdict(kind, obj(**conditions))
    assert v["status"] == expected, v
    # The message tells which condition decided, with the operator's own words.
    assert any(f"{r} message" in v["message"] and r in v["message"] for _, r in conditions.values()), v


def test_previous_grant_in_force_is_said_in_the_message() -> None:
    body = obj(Approved=("False", "ExceedsCeiling"), Ready=("True", "PreviousGrantInForce"))
    message = verdict("TenantQuota", body)["message"]
    assert message.startswith("Approved=False ExceedsCeiling: ExceedsCeiling message")
    assert "PreviousGrantInForce" in message


def _reasons_in_the_rendering_core() -> set[str]:
    """Literal reasons of every ConditionVerdict the rendering core builds, and of the
    (reason, message) problem tuples a RoutingPolicy's Ready takes its reason from."""
    reasons: set[str] = set()
    for path in (REPO / "core/llmplatform/render").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name == "ConditionVerdict" and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
                reasons.add(str(node.args[2].value))
            if name == "append" and node.args and isinstance(node.args[0], ast.Tuple):
                first = node.args[0].elts[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.isalpha():
                    reasons.add(first.value)
    return reasons


def test_every_reason_the_operator_writes_has_a_case() -> None:
    found = _reasons_in_the_rendering_core()
    assert {"DeploymentUnavailable", "MissingModels", "ExceedsCeiling", "KeysPending"} <= found, found
    covered = {r for _, conditions, _ in CASES for _, r in conditions.values()}
    assert found - covered == set(), "add the new reason to CASES (and to the Lua if it is not Degraded)"


# --------------------------------------------------------------------------- Applications (for sync waves)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "Progressing"),
        ({}, "Progressing"),
        ({"health": {"status": "Healthy"}}, "Healthy"),
        ({"health": {"status": "Degraded", "message": "quota team-a"}}, "Degraded"),
        ({"health": {"status": "Missing"}}, "Missing"),
    ],
)
def test_application_health_passes_the_child_health_through(status: Any, expected: str) -> None:
    body: dict[str, Any] = {"metadata": {"name": "app"}}
    if status is not None:
        body["status"] = status
    assert health.evaluate("argoproj.io_Application", body)["status"] == expected
