"""Retention of the audit files: what each rotated file holds and when it may be deleted.

Why apart from `audit.py`: the sink writes the chain; this decides which rotated files have
outlived every record in them, from facts read back from the files themselves (so a restart,
or a file written by an older gateway, is judged the same way). Nothing here writes.

Each request record carries `retention_days` (its tenant's, from the policy's `retention`);
records of no tenant use the gateway's default. A record expires `retention_days` after it was
written; a file expires when its last-expiring record does. The sink ends every file it
rotates with a `rotate` record whose `expires` says exactly that, so judging a file costs two
small reads (its first line and its tail); a file without one (written before this version,
or cut short) is scanned whole, once per process.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DAY_SECONDS = 86400


def parse_time(text: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 `time`/`expires` field, or None."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class FileFacts:
    """A rotated file as the pruning sees it: where it sits in its chain and when it expires."""

    chain: str | None
    first_seq: int | None
    first_prev: str | None
    last_seq: int | None
    last_hash: str | None
    expires: float
    """When its last record expires (seconds since the epoch)."""

    def entry(self, name: str, reason: str) -> dict[str, Any]:
        """The file as listed in a `prune` record (what `audit verify` matches gaps against)."""
        return {
            "file": name,
            "chain": self.chain,
            "first_seq": self.first_seq,
            "prev": self.first_prev,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "reason": reason,
        }


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _tail_records(path: str, tail_bytes: int) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - tail_bytes))
        tail = f.read()
    out = []
    for line in tail.split(b"\n")[1 if size > tail_bytes else 0 :]:
        record = _record(line)
        if record is not None and "seq" in record:
            out.append(record)
    return out


def record_expiry(record: dict[str, Any], default_days: int, fallback_time: float) -> float:
    """When one record expires: its `time` plus its `retention_days` (or the default)."""
    days = record.get("retention_days")
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        days = default_days
    written = parse_time(record.get("time"))
    return (written if written is not None else fallback_time) + days * DAY_SECONDS


def scan_expiry(path: str, default_days: int) -> float:
    """The latest expiry over every record of a file (the slow path: no `rotate` record)."""
    mtime = os.stat(path).st_mtime
    latest = 0.0
    with open(path, "rb") as f:
        for line in f:
            record = _record(line)
            if record is not None:
                latest = max(latest, record_expiry(record, default_days, mtime))
    return latest or mtime + default_days * DAY_SECONDS


def file_facts(path: str, default_days: int, tail_bytes: int = 65536) -> FileFacts:
    with open(path, "rb") as f:
        first = _record(f.readline()) or {}
    tail = _tail_records(path, tail_bytes)
    last = tail[-1] if tail else {}
    expires = parse_time(last.get("expires")) if last.get("kind") == "rotate" else None
    if expires is None:
        expires = scan_expiry(path, default_days)
    return FileFacts(
        chain=first.get("chain"),
        first_seq=first.get("seq"),
        first_prev=first.get("prev"),
        last_seq=last.get("seq"),
        last_hash=last.get("hash"),
        expires=expires,
    )
