"""`llmplatform gateway --upstream-override MODEL=URL` on examples/: which models move, which
keep their URL, and a clear error for a malformed override."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplatform.cli import main
from llmplatform.gateway.source import UpstreamOverrides, parse_override
from llmplatform.render.source import ManifestDir

EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples")


def urls(overrides: dict[str, str], providers: frozenset[str] | None = None) -> dict[str, str]:
    config, _ = UpstreamOverrides(ManifestDir(EXAMPLES), overrides, providers).load()
    return {m.name: m.url for m in config.models}


def test_one_model_by_name_or_id() -> None:
    before = urls({})
    after = urls(dict([parse_override("llama-3-8b=http://127.0.0.1:8000/v1/")]))
    assert after["llama-3-8b"] == "http://127.0.0.1:8000/v1"
    assert {k: v for k, v in after.items() if k != "llama-3-8b"} == {
        k: v for k, v in before.items() if k != "llama-3-8b"
    }
    assert (
        urls({"llm-platform/gpt-4o-mini": "http://127.0.0.1:1/v1"})["gpt-4o-mini"] == "http://127.0.0.1:1/v1"
    )


def test_wildcard_all_or_only_some_providers() -> None:
    assert set(urls({"*": "http://127.0.0.1:9/v1"}).values()) == {"http://127.0.0.1:9/v1"}
    some = urls({"*": "http://127.0.0.1:9/v1"}, frozenset({"openai"}))
    assert some["claude-sonnet"] == "https://api.anthropic.com"  # the mock speaks no Messages API
    assert some["gpt-4o-mini"] == some["llama-3-8b"] == "http://127.0.0.1:9/v1"
    # an explicit name beats the wildcard's provider filter
    named = urls({"*": "http://127.0.0.1:9/v1", "claude-sonnet": "http://127.0.0.1:7"}, frozenset({"openai"}))
    assert named["claude-sonnet"] == "http://127.0.0.1:7"


@pytest.mark.parametrize("bad", ["llama-3-8b", "=http://x", "llama-3-8b=localhost:8000"])
def test_malformed_override_is_a_clear_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway", "--manifests", EXAMPLES, "--upstream-override", bad]) == 2
    err = capsys.readouterr().err
    assert "--upstream-override" in err and "MODEL=URL" in err and repr(bad) in err
