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


async def read_event(resp: aiohttp.ClientResponse) -> bytes | None:
    """One SSE event (its lines, without the blank separator), or None at end of stream."""
    lines: list[bytes] = []
    while True:
        line = await resp.content.readline()
        if not line:
            return b"".join(lines) if lines else None
        if line in (b"\n", b"\r\n"):
            if lines:
                return b"".join(lines)
            continue
        lines.append(line)
