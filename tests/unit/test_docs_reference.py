"""docs/reference.md is generated from the CRDs and stays in step with the API types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmplatform.api import KINDS
from llmplatform.api.crdgen import crd
from llmplatform.api.docgen import DEFAULT_OUT, main, render
from llmplatform.api.kinds import KindInfo


def test_committed_reference_is_current() -> None:
    assert main(["--check"]) == 0, "run `make docs` (python -m llmplatform.api.docgen)"


def test_check_mode_reports_a_stale_page(tmp_path: Path) -> None:
    out = tmp_path / "reference.md"
    out.write_text(DEFAULT_OUT.read_text().replace("contextWindow", "contextWindw"))
    assert main(["--check", "--out", str(out)]) == 1
    assert main(["--out", str(out)]) == 0
    assert main(["--check", "--out", str(out)]) == 0


def _paths(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in (node.get("properties") or {}).items():
        yield f"{path}.{name}", sub
        yield from _paths(sub, f"{path}.{name}")
    items = node.get("items")
    if isinstance(items, dict):
        yield from _paths(items, f"{path}[]")


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_every_field_rule_and_description_is_on_the_page(info: KindInfo) -> None:
    page = render()
    section = page.split(f"## {info.kind}\n", 1)[1].split("\n## ", 1)[0]
    schema = crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in ("spec", "status"):
        for path, node in _paths(schema["properties"][part], part):
            row = next((line for line in section.splitlines() if line.startswith(f"| `{path}` |")), None)
            assert row is not None, f"{path} missing"
            assert " ".join(node.get("description", "").split())[:40].replace("|", "\\|") in row, row
            for value in node.get("enum", []):
                assert f"`{value}`" in row, (path, value)
            if "default" in node and not isinstance(node["default"], dict):
                assert "`" in row.split(" | ")[3], (path, "default not shown")
    rules = [r for _, n in [("", schema), *_paths(schema, "")] for r in n.get("x-kubernetes-validations", [])]
    assert rules, "every kind has at least one CEL rule"
    for rule in rules:
        assert " ".join(rule["message"].split()) in section


def test_a_known_row() -> None:
    row = next(line for line in render().splitlines() if line.startswith("| `spec.provider` |"))
    assert row == (
        '| `spec.provider` | string |  | `"openai"` | one of `openai`, `anthropic` | '
        "API the upstream speaks: openai (any OpenAI-compatible server) or anthropic "
        "(the Anthropic Messages API; the gateway translates). |"
    )
