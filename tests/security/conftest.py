"""The security suite attacks the gateway through its HTTP surface, as a hostile tenant (or a
broken upstream) would, with the same real processes as tests/gateway: the gateway, the mock
upstreams and Redis, started by tests/gateway/gateway_harness.py. pytest puts a test file's own
folder on sys.path (rootdir-relative, no __init__.py), so this conftest adds tests/gateway for
`import gateway_harness`, until the shared test-support package (issue #14) replaces it."""

from __future__ import annotations

import sys
from pathlib import Path

_GATEWAY_TESTS = str(Path(__file__).resolve().parent.parent / "gateway")
if _GATEWAY_TESTS not in sys.path:
    sys.path.insert(0, _GATEWAY_TESTS)
