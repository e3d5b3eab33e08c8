"""The repository's scripts as modules: files that run as `python path/to/script.py` and are
not in any package, imported by path once and kept under a name.

Why: tests check what scripts compute (the Argo CD health config of `deploy/argocd/health.py`,
the control plane of `tests/e2e/controlplane/bed.py`) without putting their folders on
`sys.path`; one loader instead of a copy of importlib's recipe in each test.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from llmplatform_testing import ROOT


def load(path: Path, name: str) -> ModuleType:
    """`path` imported as the top-level module `name`, once (a second call returns it)."""
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def argocd_health() -> ModuleType:
    """deploy/argocd/health.py: assembles the Argo CD health checks from the Lua files."""
    return load(ROOT / "deploy" / "argocd" / "health.py", "argocd_health")
