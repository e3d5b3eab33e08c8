"""Static checks of images/Dockerfile.

Why static: there is no Docker on the machines that run these tests, so the images are not
built here (`make images` says so). What can be checked without building is the shape that
makes them safe: a pinned base, a builder stage that does the building, final stages with a
non-root numeric user, a health check, and no compilers or package-manager installs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "Dockerfile"
FINAL_TARGETS = ("operator", "gateway")
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "clang", "cargo", "rustc", "git")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """ARG defaults before the first FROM, and the stages with their instructions."""
    text = re.sub(r"\\\n", " ", text)  # line continuations
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert m, f"cannot parse FROM {rest!r}"
            stages.append(Stage(base=m.group(1), name=(m.group(2) or "").lower()))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


def resolve(base: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), base)


def chain(stages: list[Stage], name: str) -> list[Stage]:
    """The stage and the local stages it is built FROM, final stage first."""
    by_name = {s.name: s for s in stages}
    out = [by_name[name]]
    while out[-1].base.lower() in by_name:
        out.append(by_name[out[-1].base.lower()])
    return out


@pytest.fixture(scope="module")
def parsed() -> tuple[dict[str, str], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def test_external_bases_are_pinned_slim_images(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    args, stages = parsed
    names = {s.name for s in stages}
    external = [resolve(s.base, args) for s in stages if s.base.lower() not in names]
    assert external
    for image in external:
        pinned = "@sha256:" in image or re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image)
        assert pinned, f"base image {image!r} is not pinned to an exact patch tag or digest"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_stage_runs_as_numeric_non_root(
    parsed: tuple[dict[str, str], list[Stage]], target: str
) -> None:
    _, stages = parsed
    users = [rest for st in reversed(chain(stages, target)) for kw, rest in st.instructions if kw == "USER"]
    assert users, f"{target}: no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{target}: USER {users[-1]!r} must be a numeric non-root uid"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_stage_has_a_healthcheck_on_healthz(
    parsed: tuple[dict[str, str], list[Stage]], target: str
) -> None:
    _, stages = parsed
    checks = [rest for st in chain(stages, target) for kw, rest in st.instructions if kw == "HEALTHCHECK"]
    assert checks and "/healthz" in checks[0], f"{target}: HEALTHCHECK against /healthz missing"


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_stage_builds_nothing(parsed: tuple[dict[str, str], list[Stage]], target: str) -> None:
    """No package installs and no build tools in the stages the final image is made of: only
    a venv copied from the builder."""
    _, stages = parsed
    final = chain(stages, target)
    for st in final:
        for kw, rest in st.instructions:
            if kw == "RUN":
                assert not re.search(r"\b(apt-get|apt|apk|pip|pip3)\b", rest), f"{st.name}: RUN {rest}"
                words = set(re.findall(r"[\w+.-]+", rest))
                assert not words & set(BUILD_TOOLS), f"{st.name}: build tool in RUN {rest}"
            if kw == "COPY":
                assert rest.startswith("--from=builder"), f"{st.name}: COPY {rest} (only the builder's venv)"
    env = " ".join(rest for st in final for kw, rest in st.instructions if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # read-only root filesystem


def test_builder_builds_a_wheel_into_a_venv(parsed: tuple[dict[str, str], list[Stage]]) -> None:
    _, stages = parsed
    builder = {s.name: s for s in stages}["builder"]
    run = " ".join(rest for kw, rest in builder.instructions if kw == "RUN")
    assert "pip wheel" in run and "venv" in run


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().split()
    assert lines[lines.index("*")] == "*"  # ignore everything, then allow the sources back
    assert {"!core/", "!operator/", "!gateway/", "!pyproject.toml"} <= set(lines)


def test_parser_catches_a_root_user_and_an_unpinned_base() -> None:
    """The checks above can fail: a Dockerfile with both faults is caught."""
    args, stages = parse("FROM python:3.11-slim AS gateway\nRUN apt-get install -y gcc\nUSER root\n")
    assert resolve(stages[0].base, args) == "python:3.11-slim"
    assert not re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", stages[0].base)
    assert [r for k, r in stages[0].instructions if k == "USER"] == ["root"]


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_image_command_parses_with_the_cli(parsed: tuple[dict[str, str], list[Stage]], target: str) -> None:
    """ENTRYPOINT + CMD is a valid `llmplatform` command line for that component."""
    import json

    from llmplatform.cli import build_parser

    _, stages = parsed
    final = chain(stages, target)
    entry = next(json.loads(r) for st in final for kw, r in st.instructions if kw == "ENTRYPOINT")
    cmd = next(json.loads(r) for st in final for kw, r in st.instructions if kw == "CMD")
    assert entry == ["llmplatform"]
    assert build_parser().parse_args(cmd).command == target


def test_images_cache_key_covers_the_whole_build_context() -> None:
    """`make images` reuses its archive while `inputs_hash` is unchanged, so the hash must read
    every file .dockerignore lets into the context (else an edit would ship a stale image)."""
    from llmplatform_testing.realnodes import images_build

    lines = (ROOT / ".dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == set(images_build().CONTEXT)
