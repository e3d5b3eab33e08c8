"""Attacks on the connection itself (#12 items 12, 13 and the write half of 7): malformed
header lines carrying a key, slowloris heads and bodies, and clients that do not read.

Everything here is raw sockets: an HTTP client library would refuse to send these requests."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing import protocol as pw

CONNECTIONS = 50
"""Slowloris connections per test (bounded: the machine is shared)."""


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    return pw.start(gateway_world)


# -- 12: malformed header lines carrying a key -------------------------------------------------

K = pw.KEY.encode()
MALFORMED = {
    "nul-after-key": b"Authorization: Bearer " + K + b"\x00\r\n",
    "control-char-after-key": b"Authorization: Bearer " + K + b"\x01junk\r\n",
    "nul-in-header-name": b"X-Key\x00: " + K + b"\r\n",
    "no-colon": b"Bearer " + K + b"\r\n",
    "space-before-colon": b"Authorization : Bearer " + K + b"\r\n",
    "obs-fold": b"X-Note: a\r\n  Bearer " + K + b"\x00\r\n",
    "overlong-line": b"Authorization: Bearer " + K + b"x" * 9000 + b"\r\n",
    "bad-request-line": None,  # the key in a request line with a NUL
}


def malformed_request(name: str, line: bytes | None) -> bytes:
    if line is None:
        return b"GET /v1/models?key=" + K + b"\x00 HTTP/1.1\r\nHost: g\r\n\r\n"
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n" + line + b"Content-Length: 2\r\n\r\n{}"


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_headers_never_echo_a_key(world: dict[str, Any], name: str) -> None:
    data = pw.raw_exchange(world["port"], malformed_request(name, MALFORMED[name]))
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.0 4", b"HTTP/1.1 4")), data[:300]
    assert K not in data and pw.KEY[:20].encode() not in data
    error = json.loads(body)["error"]
    assert error["code"] == "malformed_request" and error["type"] == "invalid_request_error"


def test_no_key_in_any_log_or_audit_line(world: dict[str, Any]) -> None:
    """After every malformed request above (and the run's normal traffic), grep everything the
    gateway wrote: its stdout/stderr and its audit log."""
    for name, line in MALFORMED.items():
        pw.raw_exchange(world["port"], malformed_request(name, line))
    # the same key in places a normal request carries it, so the logs have had the chance
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        json={"model": "nope", "messages": pw.MESSAGES, "user": "u"},
        headers={"Authorization": f"Bearer {pw.KEY}"},
    )
    assert r.status_code == 404 and pw.KEY not in r.text
    time.sleep(0.5)  # the audit sink writes every 0.1 s
    log = world["gw"].log.read_bytes()
    assert b"malformed HTTP request refused" in log  # the bad requests were seen and logged
    for path in (world["gw"].log, world["log"]):
        text = path.read_bytes()
        assert K not in text, path
        assert pw.KEY[:20].encode() not in text, path  # nor a recognisable prefix


def test_log_redaction_of_key_like_text() -> None:
    """The formatter's filter, for text no code path controls (library messages, tracebacks)."""
    import logging

    from llmplatform.gateway.main import JsonFormatter

    record = logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "bad line %r", (b"Bearer " + K + b"\x00",), None
    )
    line = JsonFormatter().format(record)
    assert pw.KEY not in line and "[redacted]" in line
    for text in (f"Authorization: Bearer {pw.KEY}", "x-api-key: sk-ant-api03-abcdefgh", pw.KEY):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, text, (), None)
        formatted = JsonFormatter().format(record)
        assert pw.KEY not in formatted and "sk-ant-api03" not in formatted, formatted


# -- 13: slowloris -----------------------------------------------------------------------------


def closed_within(sockets: list[socket.socket], seconds: float, trickle: bytes | None) -> float:
    """Time until every socket is closed by the gateway, trickling `trickle` a byte at a time
    meanwhile (a slowloris client); fails after `seconds`."""
    start = time.monotonic()
    open_ = list(sockets)
    sent = 0
    while open_:
        assert time.monotonic() - start < seconds, f"{len(open_)} of {len(sockets)} connections still open"
        still = []
        for s in open_:
            try:
                if trickle is not None and sent < len(trickle):
                    s.send(trickle[sent : sent + 1])
                s.setblocking(False)
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    still.append(s)
                    continue
                if data:
                    while data:  # a 408 first, then EOF
                        try:
                            data = s.recv(65536)
                        except BlockingIOError:
                            still.append(s)
                            break
            except OSError:
                pass  # reset: closed
            finally:
                s.setblocking(True)
        open_ = still
        sent += 1
        time.sleep(0.2)
    return time.monotonic() - start


def test_slow_request_heads_are_closed(world: dict[str, Any]) -> None:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer " + K + b"\r\n"
    sockets = [socket.create_connection(("127.0.0.1", world["port"])) for _ in range(CONNECTIONS)]
    try:
        took = closed_within(sockets, 30, head)  # 5 bytes a second: never a whole head in time
    finally:
        for s in sockets:
            s.close()
    assert took < 30
    closed = h.metric(world["base"], "llmplatform_connections_closed_total", reason="head_timeout")
    assert closed >= CONNECTIONS


def test_idle_new_connections_are_closed(world: dict[str, Any]) -> None:
    sockets = [socket.create_connection(("127.0.0.1", world["port"])) for _ in range(CONNECTIONS)]
    try:
        closed_within(sockets, 30, None)
    finally:
        for s in sockets:
            s.close()


def test_slow_bodies_get_a_408_and_are_closed(world: dict[str, Any]) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer "
        + K
        + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    sockets = []
    for _ in range(CONNECTIONS):
        s = socket.create_connection(("127.0.0.1", world["port"]))
        s.sendall(head)
        sockets.append(s)
    try:
        closed_within(sockets, 30, None)
    finally:
        for s in sockets:
            s.close()
    time.sleep(0.5)  # the audit sink writes every 0.1 s
    records = [r for r in pw.audit_records(world) if r["status"] == 408]
    assert len(records) >= CONNECTIONS and all(r["error_code"] == "request_timeout" for r in records)


def test_kept_alive_connection_may_idle_between_requests(world: dict[str, Any]) -> None:
    """The head deadline starts at a request's first byte, not at the end of the previous one."""
    with httpx.Client(base_url=world["base"], headers={"Authorization": f"Bearer {pw.KEY}"}) as c:
        assert c.get("/v1/models").status_code == 200
        time.sleep(2.5)  # longer than --header-read-timeout 1
        assert c.get("/v1/models").status_code == 200


def test_long_stream_with_a_body_sent_late_is_not_cut(world: dict[str, Any]) -> None:
    """The head deadline covers the head only: a request whose body comes in a later packet,
    answered by a stream that lasts longer than --header-read-timeout, runs to [DONE]."""
    h.mock_config(world["good"], chunk_delay_ms=250, completion_tokens=12)  # about 3 s
    body = json.dumps({"model": "good", "messages": pw.MESSAGES, "stream": True}).encode()
    request = pw.raw_request("/v1/chat/completions", body)
    head, _, payload = request.partition(b"\r\n\r\n")
    try:
        with socket.create_connection(("127.0.0.1", world["port"]), timeout=30) as s:
            s.sendall(head + b"\r\n\r\n")
            time.sleep(0.5)
            s.sendall(payload)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    finally:
        h.mock_config(world["good"], chunk_delay_ms=0, completion_tokens=16)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert b"data: [DONE]" in data and b'"error"' not in data


# -- 7 (write half): clients that do not read --------------------------------------------------


def test_client_that_does_not_read_a_stream_is_dropped(world: dict[str, Any]) -> None:
    """A stream bigger than the socket buffers to a client that never reads: after
    --client-write-timeout (2 s) the gateway gives up, frees the buffers and audits a 499."""
    h.mock_config(world["evil"], hostile="endless", hostile_bytes=pw.MAX_UPSTREAM - 500_000)
    try:
        record = _unread(
            world, {"model": "evil", "messages": pw.MESSAGES, "stream": True}, "slow-reader-1", 60
        )
        assert record is not None, (
            "no audit record: the gateway is still writing to a client that does not read"
        )
        assert (record["status"], record["error_code"]) == (499, "client_write_timeout"), record
    finally:
        h.mock_config(world["evil"], hostile="")


def _unread(
    world: dict[str, Any], body: dict[str, Any], request_id: str, timeout: float
) -> dict[str, Any] | None:
    """Send `body` from a client that never reads (a 4 KiB receive buffer); the request's audit
    record, or None when the gateway has not finished the request within `timeout` s."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", world["port"]))
        s.sendall(
            pw.raw_request("/v1/chat/completions", json.dumps(body).encode(), {"x-request-id": request_id})
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in pw.audit_records(world) if r.get("client_request_id") == request_id]
            if found:
                return found[0]
            time.sleep(0.1)
    return None


def _unread_stream(world: dict[str, Any], size: int, request_id: str) -> dict[str, Any] | None:
    """Stream `size` bytes (then [DONE]) to a client that never reads; the audit record, or
    None when the gateway has not finished the request within 8 s (2 s write deadline + slack)."""
    h.mock_config(world["evil"], hostile="endless", hostile_bytes=size)
    return _unread(world, {"model": "evil", "messages": pw.MESSAGES, "stream": True}, request_id, 8)


def test_a_stream_that_ends_while_the_client_is_not_reading_is_dropped_too(world: dict[str, Any]) -> None:
    """Ending the body (the chunked terminator) waits for the client to drain what is buffered,
    so it is under the write deadline as well. Where a stream's end meets full socket buffers
    depends on the machine's buffer sizes: the test finds the size where streams stop fitting
    (bisection between one that fits and one that cannot), then tries sizes in 16 KiB steps
    around it; every one must be audited as delivered (200) or dropped (499), never left
    hanging. Without the deadline on `write_eof` one of them hung (2.86 MB on the dev VM)."""
    n = iter(range(1000))

    def outcome(size: int) -> int:
        record = _unread_stream(world, size, f"eof-{next(n)}")
        assert record is not None, f"a {size}-byte stream to a client that does not read never ended"
        assert (record["status"], record.get("error_code")) in ((200, None), (499, "client_write_timeout"))
        return int(record["status"])

    try:
        fits, blocks = 100_000, pw.MAX_UPSTREAM - 500_000
        assert outcome(fits) == 200 and outcome(blocks) == 499
        while blocks - fits > 64_000:
            middle = (fits + blocks) // 2
            if outcome(middle) == 200:
                fits = middle
            else:
                blocks = middle
        for size in range(fits - 96_000, blocks + 96_000, 16_384):
            outcome(size)
    finally:
        h.mock_config(world["evil"], hostile="", hostile_bytes=1024 * 1024)


def test_client_that_does_not_read_a_whole_answer_is_dropped(world: dict[str, Any]) -> None:
    """The same for a whole JSON answer bigger than the socket buffers: a small answer is sent
    without a write timer (it cannot wait, server.cannot_wait), a large one keeps the timer."""
    h.mock_config(world["evil"], hostile="huge_body", hostile_bytes=pw.MAX_UPSTREAM - 500_000)
    try:
        record = _unread(world, {"model": "evil", "messages": pw.MESSAGES}, "slow-reader-2", 60)
        assert record is not None, (
            "no audit record: the gateway is still writing to a client that does not read"
        )
        assert (record["status"], record["error_code"]) == (499, "client_write_timeout"), record
    finally:
        h.mock_config(world["evil"], hostile="")
