"""The e2e control plane by name: `bed` and `build` from tests/e2e/controlplane, and `Cluster`.

Why a loader and not a move: `bed.py` and `build.py` are also the scripts behind
`make controlplane` and `make cluster-up`, which run from a fresh checkout before anything is
installed, so they stay where they are; tests, benchmarks and the demo import them from here
(`from llmplatform_testing.controlplane import bed, build`) instead of putting their folder on
`sys.path` themselves.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kubernetes import client, config

__all__ = ["BED_DIR", "Cluster", "bed", "build"]

BED_DIR = Path(__file__).resolve().parents[2] / "tests" / "e2e" / "controlplane"
"""Where bed.py and build.py live (this package is used from a checkout only: it is not in the wheel)."""


def _load(name: str) -> ModuleType:
    """Import BED_DIR/<name>.py as the top-level module `name` (the name bed.py itself uses for
    build.py), once."""
    path = BED_DIR / f"{name}.py"
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import bed
    import build
else:
    build = _load("build")
    bed = _load("bed")


@dataclass
class Cluster:
    """What an e2e test gets: a kubeconfig, API clients, and the local bed when there is one."""

    kubeconfig: Path
    local: bed.ControlPlane | None

    def api(self) -> client.ApiClient:
        api: client.ApiClient = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        return api

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """The bed's own kubectl, or the one on PATH for an external cluster."""
        if self.local is None:
            return bed.run_kubectl("kubectl", self.kubeconfig, *args, input=input, check=check)
        return self.local.kubectl(*args, input=input, check=check)
