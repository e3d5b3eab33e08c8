"""`make demo --once` end to end: the README's main command must keep working.

Why a test: the demo is the newcomer's first hour. It starts its own control plane, operator,
gateway and test upstreams and checks every scene it shows (it exits non-zero when one does
not behave as described), so running it here proves the whole chain from `kubectl apply -f
examples/` to the openai client still works.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llmplatform_testing import ROOT

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("LLMPLATFORM_E2E_KUBECONFIG")),
    reason="the demo always runs its own local control plane",
)


def test_demo_once_passes_every_scene() -> None:
    free = subprocess.run(
        [
            sys.executable,
            "-c",
            "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "demo/run.py"), "--once", "--port", free],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "all scenes passed" in out
    scenes = (
        "routing by tier:",
        "fallback:",
        "governance: e-mail address redacted",
        "rate limit: 429",
        "usage: team-a tokensToday=",
    )
    for line in scenes:
        assert f"ok  {line}" in out, out[-6000:]
