"""The example Argo CD app of apps (deploy/argocd): well-formed, ordered by sync waves, and
pointing at files that exist. Argo CD cannot run here, so this checks the YAML structurally:
what each wave applies, that every wave can become Healthy with only the earlier waves in
place, and that no `ignoreDifferences` hides drift (tests/e2e/test_argocd.py proves none is
needed)."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ARGO = REPO / "deploy/argocd"
WAVE = "argocd.argoproj.io/sync-wave"


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


ROOT_APP = load(ARGO / "root.yaml")[0]
APPS = {d["metadata"]["name"]: d for p in sorted((ARGO / "apps").glob("*.yaml")) for d in load(p)}


def wave(app: dict[str, Any]) -> int:
    return int(app["metadata"].get("annotations", {}).get(WAVE, "0"))


def files_of(app: dict[str, Any]) -> list[Path]:
    """The files Argo CD would apply for a directory source (its `include` glob, with {a,b})."""
    source = app["spec"]["source"]
    folder = REPO / source["path"]
    include = source.get("directory", {}).get("include", "*.yaml")
    patterns = include.strip("{}").split(",") if include.startswith("{") else [include]
    return sorted(p for p in folder.glob("*") if any(fnmatch.fnmatch(p.name, pat) for pat in patterns))


def objects_of(app: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for p in files_of(app) for d in load(p)]


def by_kind(kind: str) -> dict[str, int]:
    """Application name -> wave, for the Applications that apply objects of `kind`."""
    return {
        name: wave(app)
        for name, app in APPS.items()
        if "helm" not in app["spec"]["source"] and any(o["kind"] == kind for o in objects_of(app))
    }


@pytest.mark.parametrize("app", [ROOT_APP, *APPS.values()], ids=lambda a: a["metadata"]["name"])
def test_every_application_is_well_formed(app: dict[str, Any]) -> None:
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    assert app["metadata"]["namespace"] == "argocd"
    spec = app["spec"]
    assert set(spec) <= {"project", "source", "destination", "syncPolicy"}, "no ignoreDifferences"
    assert spec["project"] == "default"
    source = spec["source"]
    assert (source["repoURL"], source["targetRevision"]) == (
        ROOT_APP["spec"]["source"]["repoURL"],
        ROOT_APP["spec"]["source"]["targetRevision"],
    )
    assert (REPO / source["path"]).is_dir(), source["path"]
    assert spec["destination"]["server"] == "https://kubernetes.default.svc"
    assert spec["syncPolicy"]["automated"]["selfHeal"] is True
    if app is not ROOT_APP:
        assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"]
        assert files_of(app) or "helm" in source, "the source applies nothing"


def test_root_syncs_exactly_the_apps_folder() -> None:
    assert ROOT_APP["spec"]["source"]["path"] == "deploy/argocd/apps"
    assert WAVE not in ROOT_APP["metadata"].get("annotations", {})


def test_waves_crds_then_operator_then_models_and_policies_then_quotas() -> None:
    waves = {name: wave(app) for name, app in APPS.items()}
    assert waves == {
        "llm-platform-crds": -2,
        "llm-platform": -1,
        "llm-platform-prerequisites": -1,
        "llm-platform-config": 0,
        "llm-platform-tenants": 1,
    }
    assert by_kind("CustomResourceDefinition") == {"llm-platform-crds": -2}
    assert by_kind("LLMModel") == {"llm-platform-config": 0}
    assert by_kind("RoutingPolicy") == {"llm-platform-config": 0}
    assert by_kind("TenantQuota") == {"llm-platform-tenants": 1}
    assert max(by_kind("Namespace").values()) < wave(APPS["llm-platform-config"])


def test_crds_come_from_crds_folder_and_are_never_pruned() -> None:
    crds = APPS["llm-platform-crds"]
    assert files_of(crds) == sorted((REPO / "crds").glob("*.yaml"))
    assert crds["spec"]["syncPolicy"]["automated"]["prune"] is False
    # Deleting the Application must not cascade to the CRDs (and so to every custom resource).
    assert "finalizers" not in crds["metadata"]


def test_each_example_file_is_applied_exactly_once() -> None:
    applied = [
        p for app in APPS.values() if app["spec"]["source"]["path"] == "examples" for p in files_of(app)
    ]
    assert sorted(applied) == sorted((REPO / "examples").glob("*.yaml"))
    assert len(applied) == len(set(applied))


def _keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        out.add(prefix + key)
        if isinstance(value, dict) and value:
            out |= _keys(value, f"{prefix}{key}.")
    return out


def test_chart_application_skips_crds_and_sets_only_real_values() -> None:
    chart = APPS["llm-platform"]
    source = chart["spec"]["source"]
    assert (REPO / source["path"] / "Chart.yaml").is_file()
    assert source["helm"]["skipCrds"] is True, "wave -2 owns the CRDs"
    values = yaml.safe_load((REPO / source["path"] / "values.yaml").read_text())
    unknown = _keys(source["helm"]["valuesObject"]) - _keys(values)
    assert not unknown, f"not in the chart's values.yaml: {unknown}"
    assert "CreateNamespace=true" in chart["spec"]["syncPolicy"]["syncOptions"]
    assert chart["spec"]["destination"]["namespace"] == "llm-platform"


def test_secrets_the_gateway_mounts_arrive_in_the_chart_wave() -> None:
    """The gateway pods cannot start until the provider Secrets they mount exist: those must
    come no later than the chart's wave, or the chart never becomes Healthy and the later
    waves never run."""
    chart = APPS["llm-platform"]
    mounted = set(chart["spec"]["source"]["helm"]["valuesObject"]["gateway"]["providerSecrets"])
    platform_ns = chart["spec"]["destination"]["namespace"]
    named = {
        o["spec"]["endpoint"]["apiKeySecretRef"]["name"]
        for o in objects_of(APPS["llm-platform-config"])
        if o["kind"] == "LLMModel" and "apiKeySecretRef" in o["spec"].get("endpoint", {})
    }
    assert mounted == named, "mount exactly the Secrets the models name"
    early = {
        o["metadata"]["name"]
        for name, app in APPS.items()
        if "helm" not in app["spec"]["source"] and wave(app) <= wave(chart)
        for o in objects_of(app)
        if o["kind"] == "Secret" and o["metadata"].get("namespace") == platform_ns
    }
    assert mounted <= early


def test_waiting_on_child_applications_has_its_health_check() -> None:
    cm = yaml.safe_load((ARGO / "argocd-cm-health.yaml").read_text())
    assert "resource.customizations.health.argoproj.io_Application" in cm["data"]
