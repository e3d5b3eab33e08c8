"""Key-like strings out of every log line and every error body the gateway writes.

Why a filter and not only care at each call site: some text the gateway logs is not its own.
aiohttp logs a malformed request line or header verbatim (and echoed it in its 400 body), an
upstream's error text can quote a header, and an exception message can carry whatever a client
sent. A tenant key (`llmp-...`), a provider key (`sk-...`) or a bearer token in any of those
would then sit in log storage that many more people can read than the Secrets. So the log
formatter passes every finished line through `redact`, and the gateway's own 400 for a
malformed request never echoes the request (connection.py).

What counts as key-like: `llmp-` and `sk-` followed by key characters, the word after
`Bearer`, and the value after `x-api-key`, `api-key`/`api_key` or `authorization`. Each is
replaced by its prefix and `[redacted]`.
"""

from __future__ import annotations

import re

_PATTERNS = (
    (re.compile(r"(?i)\b(authorization)([\"']?\s*[:=]\s*[\"']?)[^\r\n\"',;}\]]+"), r"\1\2[redacted]"),
    (re.compile(r"(?i)\b(x-api-key|api[-_]key)([\"']?\s*[:=]\s*[\"']?)[^\s\"',;}\]]+"), r"\1\2[redacted]"),
    (re.compile(r"(?i)\b(bearer)(\s+|\\t|%20)[^\s\"',;}\]]+"), r"\1\2[redacted]"),
    (re.compile(r"\b(llmp-|sk-)[A-Za-z0-9_\-.]{4,}"), r"\1[redacted]"),
)
_HINT = re.compile(r"(?i)llmp-|sk-|bearer|api[-_]key|authorization")
"""One cheap search first: most lines contain none of these."""


def redact(text: str) -> str:
    """`text` with anything key-like replaced (see the module docstring)."""
    if _HINT.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
