"""The security suite attacks the gateway through its HTTP surface with the same real processes
as tests/gateway (mock upstreams, gateways, Redis): its harness is importable from here."""

from __future__ import annotations

import sys
from pathlib import Path

GATEWAY_TESTS = str(Path(__file__).resolve().parent.parent / "gateway")
if GATEWAY_TESTS not in sys.path:
    sys.path.insert(0, GATEWAY_TESTS)
