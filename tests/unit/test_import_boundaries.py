"""What may import what (docs/architecture.md), checked.

Why subprocesses: an import check in the test process itself would see whatever earlier tests
already imported; each check here starts a fresh interpreter, imports one thing and lists what
that loaded. The cycle check reads the source with `ast` instead, so it also sees imports inside
functions and under TYPE_CHECKING, which a run would not.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOTS = {"core": ROOT / "core", "operator": ROOT / "operator", "gateway": ROOT / "gateway"}
CONTROL_PLANE = ("llmplatform.operator", "llmplatform.render", "llmplatform.api", "llmplatform.cli", "celpy")
CONTRACT_MAY_IMPORT = {"pydantic", "llmplatform.contract"}


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module below a source root."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


PRODUCT = {name: path for root in ROOTS.values() for name, path in modules(root).items()}
GATEWAY = sorted(n for n in PRODUCT if n.startswith("llmplatform.gateway"))
OPERATOR = sorted(n for n in PRODUCT if n.startswith("llmplatform.operator"))
CONTRACT = sorted(n for n in PRODUCT if n.startswith("llmplatform.contract"))


def loaded_after_import(module: str) -> list[str]:
    """sys.modules of a fresh interpreter after `import module`."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def within(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", GATEWAY)
def test_gateway_module_loads_no_control_plane(module: str) -> None:
    bad = [m for m in loaded_after_import(module) if within(m, CONTROL_PLANE)]
    assert bad == [], f"importing {module} loads {bad}"


@pytest.mark.parametrize("module", OPERATOR)
def test_operator_module_loads_no_gateway(module: str) -> None:
    bad = [m for m in loaded_after_import(module) if within(m, ("llmplatform.gateway",))]
    assert bad == [], f"importing {module} loads {bad}"


def imports(path: Path, module: str) -> set[str]:
    """Every module `path` names in an import statement (anywhere in the file), resolved to
    the most specific product module where there is one."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_contract_imports_only_pydantic_and_the_standard_library() -> None:
    for module in CONTRACT:
        for name in imports(PRODUCT[module], module):
            top = name.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names or top == "__future__" or within(name, CONTRACT_MAY_IMPORT)
            )
            assert allowed, f"{module} imports {name}"


def test_contract_loads_nothing_of_the_platform_but_itself() -> None:
    for module in CONTRACT:
        bad = [
            m
            for m in loaded_after_import(module)
            if m.startswith("llmplatform.") and not within(m, ("llmplatform.contract",))
        ]
        assert bad == [], f"importing {module} loads {bad}"


def graph() -> dict[str, set[str]]:
    """Product module -> the product modules it imports (a package's `__init__` counts as the
    package; `from pkg import sub` is an edge to `pkg.sub` when that is a module)."""
    edges: dict[str, set[str]] = {}
    for module, path in PRODUCT.items():
        targets = set()
        for name in imports(path, module):
            while name and name not in PRODUCT:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        edges[module] = targets
    # `from llmplatform.render import x` names both the package and its submodule x: the edge to
    # the package itself only counts where the package's __init__ is what is meant.
    for module, targets in edges.items():
        for name in list(targets):
            if any(t.startswith(name + ".") for t in targets) and not _names_package_attr(module, name):
                targets.discard(name)
    return edges


def _names_package_attr(module: str, package: str) -> bool:
    """Whether `module` takes from `package` a name that is not one of its submodules."""
    tree = ast.parse(PRODUCT[module].read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == package
            and any(f"{package}.{a.name}" not in PRODUCT for a in node.names)
        ):
            return True
        if isinstance(node, ast.Import) and any(a.name == package for a in node.names):
            return True
    return False


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_cycle_check_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_product_code() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_gateway_source_never_names_the_control_plane() -> None:
    """Also the imports a run would not reach (inside functions, under TYPE_CHECKING)."""
    for module in GATEWAY:
        bad = [n for n in imports(PRODUCT[module], module) if within(n, CONTROL_PLANE)]
        assert bad == [], f"{module} imports {bad}"


@pytest.mark.parametrize("module", ["llmplatform.gateway.server", "llmplatform.operator.main"])
def test_tracing_off_never_imports_the_opentelemetry_sdk(module: str) -> None:
    """The SDK is imported only when the OTEL_* variables turn tracing on (tracing.py), so a
    gateway or an operator that does not trace pays nothing for it at start-up."""
    bad = [
        m for m in loaded_after_import(module) if within(m, ("opentelemetry.sdk", "opentelemetry.exporter"))
    ]
    assert bad == [], f"importing {module} loads {bad}"
