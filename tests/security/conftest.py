"""tests/security: the gateway attacked the way a hostile tenant or upstream would.

The suites reuse the gateway test harness (real mock upstreams, real gateway processes:
tests/gateway/gateway_harness.py), so its folder is put on the import path here.
"""

from __future__ import annotations

import sys
from pathlib import Path

GATEWAY_TESTS = str(Path(__file__).resolve().parent.parent / "gateway")
if GATEWAY_TESTS not in sys.path:
    sys.path.insert(0, GATEWAY_TESTS)
