"""One gateway with short protocol limits in front of a good and a hostile mock upstream, for
the tests/security/test_protocol_*.py files (each starts its own, module-scoped), and the
raw-socket helpers they share."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx

from llmplatform_testing import gateway as h

KEY = "llmp-security-protocol-KEY-7f3a9c2e5b1d"
MAX_UPSTREAM = 8_000_000
"""--max-upstream-body-bytes of the test gateway: above loopback's socket buffers, so a client
that does not read blocks the gateway's writes."""
LIMITS = [
    "--max-upstream-body-bytes",
    str(MAX_UPSTREAM),
    "--client-write-timeout",
    "2",
    "--header-read-timeout",
    "1",
    "--body-read-timeout",
    "1",
]
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def start(world: h.World) -> h.World:
    """Fill `world` with the good and the hostile (`evil`) mock upstream and one gateway with
    LIMITS in front of them; `world["port"]` is the gateway's port, for raw sockets."""
    good_url = world.mock("good")
    evil_url = world.mock("evil")
    docs = [
        h.model("good", good_url),
        h.model("evil", evil_url, tier="specialized"),
        h.policy(
            {"standard": ["good"], "specialized": ["evil"]},
            # 429 and 502 are not retried: the tests see what reaches the client unretried
            fallback={"maxAttempts": 1, "retryOn": [500, 503, 504, "timeout", "connect"], "acrossTiers": []},
            timeouts={"connectSeconds": 2, "requestSeconds": 20, "streamIdleSeconds": 10},
        ),
        *h.tenant("team-sec", {"ci": KEY}, ["standard", "specialized"]),
    ]
    base = world.gateway(docs, *LIMITS)
    world["port"] = int(base.rsplit(":", 1)[1])
    return world


def audit_records(world: dict[str, Any]) -> list[dict[str, Any]]:
    lines = world["log"].read_text().splitlines()
    return [r for r in (json.loads(x) for x in lines if x.strip()) if r.get("kind") == "request"]


def audited(world: dict[str, Any], request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The one audit record of the gateway request id `request_id` (the sink writes every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in audit_records(world) if r["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    found = [r for r in audit_records(world) if r["request_id"] == request_id]
    assert len(found) == 1, found
    return found[0]


def chat(world: dict[str, Any], model: str, **body: Any) -> httpx.Response:
    return httpx.post(
        world["base"] + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **body},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )


def raw_exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send `data` on a fresh connection and read until the gateway closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def raw_request(path: str, body: bytes, headers: dict[str, str] | None = None, key: str = KEY) -> bytes:
    """An HTTP/1.1 POST with `Connection: close`, as bytes."""
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: gateway",
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
