"""Audit records: one JSON line per request, to a file or standard output.

Why so simple for now: the record set and the tamper-evident hash chain belong to the
governance work (issue #5); this sink already writes one record per answered request with no
prompt or response content, so that work only changes the record and the writer.
With several workers each line is one `write` to a file opened in append mode, which the
kernel keeps whole.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


class AuditSink:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640) if path else None

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        if self._fd is None:
            sys.stdout.write(line)
            sys.stdout.flush()
        else:
            os.write(self._fd, line.encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
