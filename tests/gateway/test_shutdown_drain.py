"""`--shutdown-delay`: on SIGTERM the gateway drains before it stops listening.

Why: in a rollout Kubernetes takes the terminating pod out of its Service while the kubelet
sends SIGTERM; a gateway that closed at once would refuse the connections kube-proxy still
routes to it and cut keep-alive connections under a request (the real-node test
`test_helm_upgrade_of_the_gateway_image_under_load_fails_no_request` shows the whole rollout).
Here, one real gateway process: after SIGTERM it keeps answering, /readyz says it is draining,
every answer closes its connection, and it exits once the delay is over.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from llmplatform_testing import gateway as h
from llmplatform_testing.procs import wait_for

KEY = "llmp-test-drain-key"


def test_sigterm_drains_for_the_delay_then_stops(tmp_path: Path) -> None:
    with h.world(tmp_path) as w:
        docs = [
            h.model("m", w.mock("mock")),
            h.policy({"standard": ["m"]}),
            *h.tenant("team-d", {"ci": KEY}, ["standard"]),
        ]
        base = w.gateway(docs, "--shutdown-delay", "6")
        gw = w["gw"]
        chat = {"model": "standard", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
            before = client.post("/v1/chat/completions", json=chat)
            assert before.status_code == 200
            assert before.headers.get("connection", "").lower() != "close"  # keep-alive while serving
            assert client.get("/readyz").json()["draining"] is False
            os.killpg(gw.popen.pid, signal.SIGTERM)
            signalled = time.monotonic()
            # Still answering, but no longer a target (once the signal has arrived).
            ready = wait_for(
                lambda: (r := client.get("/readyz")).status_code == 503 and r.json()["draining"] and r,
                5,
                "/readyz to say draining",
            )
            assert ready.headers["connection"].lower() == "close"
            during = client.post("/v1/chat/completions", json=chat)
            assert during.status_code == 200, during.text
            assert during.headers["connection"].lower() == "close"
        gw.popen.wait(timeout=30)
        assert time.monotonic() - signalled >= 5  # it waited out the delay (6 s), then exited
        assert gw.popen.returncode == 0, gw.log_tail()
