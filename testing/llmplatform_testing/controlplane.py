"""The e2e control plane by name: `bed` and `build` from tests/e2e/controlplane, and `Cluster`.

Why a loader and not a move: `bed.py` and `build.py` are also the scripts behind
`make controlplane` and `make cluster-up`, which run from a fresh checkout before anything is
installed, so they stay where they are; tests, benchmarks and the demo import them from here
(`from llmplatform_testing.controlplane import bed, build`) instead of putting their folder on
`sys.path` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kubernetes import client, config

from llmplatform_testing import scripts

__all__ = ["BED_DIR", "Cluster", "bed", "build"]

BED_DIR = Path(__file__).resolve().parents[2] / "tests" / "e2e" / "controlplane"
"""Where bed.py and build.py live (this package is used from a checkout only: it is not in the wheel)."""


def _load(name: str) -> ModuleType:
    """BED_DIR/<name>.py as the top-level module `name` (the name bed.py itself uses for build.py)."""
    return scripts.load(BED_DIR / f"{name}.py", name)


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
