"""What the attack suites of tests/security share: a gateway with metered tenants over the
test upstreams, the audit records of a request, and raw-socket streams a client can leave.

Why raw sockets: leaving a stream at a chosen point (before its first chunk, in the middle,
after the last chunk but before `[DONE]`) means closing the connection at an exact moment,
which an HTTP client library hides.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx


def audit_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def records_of(path: Path, request_id: str, wait: float = 15.0) -> list[dict[str, Any]]:
    """The request records with this id, once at least one is written (the sink flushes every
    0.1 s), after a further moment in which a duplicate would have shown up."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if mine(path, request_id):
            time.sleep(0.5)
            return mine(path, request_id)
        time.sleep(0.05)
    return []


def mine(path: Path, request_id: str) -> list[dict[str, Any]]:
    return [r for r in audit_records(path) if r.get("kind") == "request" and r["request_id"] == request_id]


def usage(base: str, key: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(
        base + "/v1/llmplatform/usage", headers={"Authorization": f"Bearer {key}"}, timeout=30
    ).json()
    return body


class RawStream:
    """One streamed completion over a raw socket: send it, read its events, hang up."""

    def __init__(self, base: str, path: str, key: str, body: dict[str, Any]) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + data)
        self.buffer = b""
        self.headers: dict[str, str] = {}

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        self.buffer += chunk

    def read_headers(self) -> dict[str, str]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 200"), lines[0]
        self.headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        return self.headers

    def events_until(self, predicate: Any) -> list[bytes]:
        """`data:` payloads until `predicate(payload)` holds for one (the chunked framing is
        skipped: the gateway writes each event in one HTTP chunk, so a payload is one line)."""
        seen: list[bytes] = []
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                if line.startswith(b"data: "):
                    seen.append(line[6:])
                    if predicate(line[6:]):
                        return seen
            self._fill()

    def hang_up(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()  # linger 0: a reset, as a client that dies does
