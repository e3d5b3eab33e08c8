"""Nothing in the repository may depend on a file outside it.

Why: the contract and the docs once linked `../shared/SPEC.md`, a file next to the checkout
that a fresh clone does not have. Every tracked text file is checked: relative links and paths
that climb out of the repository (`../shared/...` from the root), absolute paths into the
machine this was written on (`/work/...`), and Markdown links to files that do not exist.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from llmplatform_testing import ROOT

CLIMB = re.compile(r"(?<![\w.])((?:\.\./)+[\w.-][\w./-]*)")
"""A relative path that starts by going up: `../shared/SPEC.md`, `../../x`."""
MACHINE = re.compile(r"(?<![\w.])/work/[\w./-]+")
"""An absolute path on the machine the project was first written on."""
MD_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
MD_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
"""Code in Markdown: a regular expression there is not a link."""
SKIP_SUFFIXES = {".png", ".jpg", ".gif", ".ico", ".gz", ".tgz", ".lock"}


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name]


def text(path: Path) -> str | None:
    if path.suffix in SKIP_SUFFIXES or not path.is_file():
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT.resolve())


def outside_references(path: Path, body: str) -> list[str]:
    """What in `body` (the text of `path`) points outside the repository or at a missing file."""
    found = [f"absolute machine path {m.group(0)}" for m in MACHINE.finditer(body)]
    for m in CLIMB.finditer(body):
        if not inside(path.parent / m.group(1)):
            found.append(f"path outside the repository {m.group(1)}")
    if path.suffix == ".md":
        for m in MD_LINK.finditer(MD_CODE.sub("", body)):
            target = m.group(1).split("#", 1)[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):  # anchors, http:, mailto:
                continue
            resolved = ROOT / target.lstrip("/") if target.startswith("/") else path.parent / target
            if not inside(resolved):
                found.append(f"link outside the repository {m.group(1)}")
            elif not resolved.exists():
                found.append(f"link to a missing file {m.group(1)}")
    return found


def test_no_tracked_file_points_outside_the_repository() -> None:
    problems = []
    for path in tracked_files():
        if path == Path(__file__).resolve():
            continue  # its own examples below
        body = text(path)
        if body is None:
            continue
        for what in outside_references(path, body):
            problems.append(f"{path.relative_to(ROOT)}: {what}")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("where", "body", "expected"),
    [
        ("README.md", "see [SPEC](../shared/SPEC.md)", 2),  # climbs out, and as a Markdown link
        ("docs/a.md", "see [spec](spec.md) and [ops](../README.md#layout)", 0),
        ("docs/a.md", "see [gone](nothing-here.md)", 1),
        ("docs/a.md", "cite /work/shared/STYLE.md", 1),
        ("core/x.py", 'Path("../../../elsewhere")', 1),
        ("core/x.py", "https://example.com/a/../b and ../core/x.py", 0),
    ],
)
def test_the_check_finds_what_it_should(where: str, body: str, expected: int) -> None:
    found = outside_references(ROOT / where, body)
    assert len(found) == expected, found


def test_test_modules_have_unique_basenames() -> None:
    """tests/ has no __init__.py files, so pytest imports each test module by its basename:
    two files named alike in different folders stop the whole run at collection (as
    tests/unit and tests/e2e `test_config_shards.py` once did, in CI only, where both are
    collected together)."""
    seen: dict[str, list[str]] = {}
    for path in tracked_files():
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "tests" and rel.name.startswith("test_") and rel.suffix == ".py":
            seen.setdefault(rel.name, []).append(str(rel))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"test modules sharing a basename: {clashes}"
