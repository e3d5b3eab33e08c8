"""`llmplatform render DIR` on the shipped examples and on broken input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmplatform.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["render", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_render_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(EXAMPLES))
    assert code == 0
    docs = list(yaml.safe_load_all(out))
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Deployment", "llmm-llama-3-8b"),
        ("Service", "llmm-llama-3-8b"),
        ("HorizontalPodAutoscaler", "llmm-llama-3-8b"),
        ("NetworkPolicy", "llmm-llama-3-8b"),
        ("ConfigMap", "llmplatform-gateway-config"),
    ]
    config = json.loads(docs[-1]["data"]["config.json"])
    assert [m["name"] for m in config["models"]] == ["claude-sonnet", "gpt-4o-mini", "llama-3-8b"]
    assert {m["tier"] for m in config["models"]} == {"premium", "standard", "efficient"}
    assert [t["id"] for t in config["tenants"]] == ["team-a/team-a", "team-b/team-b"]
    assert "FAKE" not in out  # the placeholder keys of the example Secrets are not printed
    # team-a's generated keys do not exist offline: reported, not fatal
    assert "TenantQuota team-a/team-a: Ready=False (KeysPending)" in err


def test_render_is_byte_identical_across_runs(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, str(EXAMPLES))[1]
    second = run(capsys, str(EXAMPLES))[1]
    assert first == second


def test_platform_namespace_option(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, str(EXAMPLES), "--platform-namespace", "ai-gw")
    config_map = list(yaml.safe_load_all(out))[-1]
    assert config_map["metadata"]["namespace"] == "ai-gw"


def test_invalid_resource_fails_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: llmplatform.io/v1alpha1\nkind: LLMModel\nmetadata: {name: x, namespace: ns}\n"
        "spec: {tier: standard, contextWindow: 10}\n"
    )
    code, out, err = run(capsys, str(tmp_path))
    assert code == 1
    assert "InvalidSpec" in err and "exactly one of endpoint or serving" in err
    assert "llmplatform-gateway-config" in out


def test_unreadable_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2 and "broken.yaml" in err
    code, _, err = run(capsys, str(tmp_path / "missing"))
    assert code == 2 and "not a directory" in err


def test_installed_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llmplatform.cli", "render", str(EXAMPLES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "kind: ConfigMap" in proc.stdout
