"""Helpers shared by the real-node tests (test_realnodes_*.py, test_quickstart.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def images_build() -> ModuleType:
    """images/build.py, loaded under its own name (``build`` is the control-plane builder)."""
    spec = importlib.util.spec_from_file_location("llmplatform_images_build", ROOT / "images" / "build.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def image_name(target: str) -> str:
    """The name `make images` gives a target's image (the chart's default repository and tag)."""
    return str(images_build().image_name(target))
