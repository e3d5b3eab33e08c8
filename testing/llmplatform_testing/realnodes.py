"""The real-node bed by name (tests/e2e/controlplane/realnodes.py) and the image names
`make images` gives, for the real-node tests (test_realnodes_*.py, test_quickstart.py)."""

from __future__ import annotations

from types import ModuleType

from llmplatform_testing import ROOT, scripts
from llmplatform_testing.controlplane import BED_DIR

bed_nodes: ModuleType = scripts.load(BED_DIR / "realnodes.py", "realnodes")
"""tests/e2e/controlplane/realnodes.py (a script of the bed, untyped: loaded, not type-checked)."""


def images_build() -> ModuleType:
    """images/build.py, loaded under its own name (``build`` is the control-plane builder)."""
    return scripts.load(ROOT / "images" / "build.py", "llmplatform_images_build")


def image_name(target: str) -> str:
    """The name `make images` gives a target's image (the chart's default repository and tag)."""
    return str(images_build().image_name(target))
