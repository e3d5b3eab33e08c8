"""End-to-end tests against a real Kubernetes API server: every test here is marked `e2e`.

The fixtures (`cluster`, `crds`, `namespace`, `operator_env`, `real_cluster`) live in
`llmplatform_testing.e2e`, imported by tests/conftest.py, so tests/security can use them too.
"""

from __future__ import annotations

import pytest

from llmplatform_testing import ROOT
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.operator_process import OperatorProcess

__all__ = ["ROOT", "Cluster", "OperatorProcess"]  # what test modules used to import from here


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
