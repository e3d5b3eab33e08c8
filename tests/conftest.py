"""The one gateway world fixture, shared by tests/gateway and tests/security: each test
module's `world` fixture fills it. The real-API-server fixtures come from
`llmplatform_testing.e2e` (tests/e2e and the operator attacks in tests/security use them).

Why: every module used to start its upstreams and gateway in its own try/finally; the
processes, their temp folder and their clean-up now live in `llmplatform_testing.gateway.World`,
and a module's `world` only says what runs in it (which upstreams, which manifests).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing.e2e import (  # noqa: F401  (fixtures and the report hook, by name)
    cluster,
    crds,
    namespace,
    operator_env,
    pytest_runtest_makereport,
    real_cluster,
)


@pytest.fixture(scope="module")
def gateway_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[h.World]:
    """An empty World in a fresh temp folder; what the module starts in it is stopped after the module."""
    with h.world(tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))) as w:
        yield w
