"""Server-sent events as the gateway reads and writes them: written once, one convention.

Inside the gateway an *event* is its lines without the blank separator line (`data: {...}\n`),
as `read_event` returns it from an upstream; `frame` adds the separator when it goes to the
client. Every event the gateway makes itself (translated Anthropic chunks, redacted chunks,
in-band errors, cached answers replayed as a stream) is built with `event`, so all of them use
`\n` line ends and compact JSON; events passed through from an upstream keep their own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp.http_exceptions import HttpProcessingError

if TYPE_CHECKING:
    import aiohttp

SEPARATOR = b"\n"
DONE = b"data: [DONE]\n"
"""The OpenAI end-of-stream event."""
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def data_event(data: bytes) -> bytes:
    """One `data:` event carrying already-encoded data, without its separator."""
    return b"data: " + data + b"\n"


def event(payload: Any) -> bytes:
    """One `data:` event carrying a JSON payload, without its separator."""
    return data_event(_COMPACT.encode(payload).encode())


def frame(payload: Any) -> bytes:
    """One `data:` event with its separator: ready to write to the client."""
    return event(payload) + SEPARATOR


def is_done(data: bytes) -> bool:
    return data.startswith(b"data:") and data[5:].strip() == b"[DONE]"


MAX_EVENT_BYTES = 256 * 1024
"""Largest SSE event read from an upstream (a chat chunk is a few hundred bytes). A single line
is also bounded by aiohttp's reader, whose limit depends on its version and buffer sizes."""


class BadStream(ValueError):
    """An upstream stream the gateway cannot relay: a line or event over the limits, a line that
    is not SSE, or data that is not JSON. `reason` is a metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def read_event(resp: aiohttp.ClientResponse) -> bytes | None:
    """One SSE event (its lines, without the blank separator), or None at end of stream;
    BadStream when a line or the event is too long."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await resp.content.readline()
        except (ValueError, HttpProcessingError) as exc:  # aiohttp: "Chunk too big", LineTooLong
            raise BadStream("too_large", f"an upstream SSE line exceeds the reader's limit ({exc})") from exc
        if not line:
            return b"".join(lines) if lines else None
        if line in (b"\n", b"\r\n"):
            if lines:
                return b"".join(lines)
            continue
        size += len(line)
        if size > MAX_EVENT_BYTES:
            raise BadStream("too_large", f"an upstream SSE event exceeds {MAX_EVENT_BYTES} bytes")
        lines.append(line)


FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
"""What a line of an SSE event may start with (`:` is a comment)."""


def check_openai_event(event: bytes) -> None:
    """BadStream unless `event` is SSE whose data is `[DONE]` or a JSON object: what an
    OpenAI-compatible upstream sends. Garbage relayed as a 200 would break the client's parser
    and hide an upstream fault from the audit trail and the metrics."""
    data: list[bytes] = []
    for line in event.splitlines():
        if not line.startswith(FIELDS):
            raise BadStream("malformed", f"upstream sent a line that is not SSE: {line[:80]!r}")
        if line.startswith(b"data:"):
            data.append(line[5:].strip())
    if not data:
        return  # comments and bare event/id/retry lines
    payload = b"\n".join(data)
    if payload == b"[DONE]":
        return
    try:
        parsed = json.loads(payload)
    except ValueError as exc:
        raise BadStream("malformed", f"upstream sent SSE data that is not JSON: {payload[:80]!r}") from exc
    if not isinstance(parsed, dict):
        raise BadStream("malformed", f"upstream sent SSE data that is not a JSON object: {payload[:80]!r}")
