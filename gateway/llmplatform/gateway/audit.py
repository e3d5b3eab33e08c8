"""Audit records: one JSON line per request, to a file or standard output.

Why so simple for now: the record set and the tamper-evident hash chain belong to the
governance work (issue #5); this sink already writes one record per answered request with no
prompt or response content, so that work only changes the record and the writer.

Lines are buffered and written at most every `FLUSH_SECONDS` (or at `FLUSH_LINES` lines, and on
shutdown): a `write` per request was about 5% of the gateway's CPU per request. A crash can
lose the last fraction of a second of records; nothing is fsynced (issue #5 sets that policy).
With several workers each flush is one `write` to a file opened in append mode, which the
kernel keeps whole, so lines from different workers never interleave mid-line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

FLUSH_SECONDS = 0.1
FLUSH_LINES = 256


class AuditSink:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640) if path else None
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def write(self, record: dict[str, Any]) -> None:
        self._lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
        if len(self._lines) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no event loop (tools, tests): write at once
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        data = "".join(self._lines)
        self._lines.clear()
        if self._fd is None:
            sys.stdout.write(data)
            sys.stdout.flush()
        else:
            os.write(self._fd, data.encode())

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
