"""The audit trail: one hash-chained JSON line per completion request, to a file or stdout.

Why a hash chain: an audit log is evidence, so an edit, a deletion, an insertion or a
reordering of records must be detectable afterwards without trusting whoever kept the file.
Each record carries the hash of the record before it in its chain, so changing any one record
breaks every link after it (`llmplatform audit verify`, see `auditverify.py`).

Canonical form (what `hash` covers): the record without its `hash` key, serialised as JSON
with keys sorted, separators `,` and `:` (no whitespace), non-ASCII characters escaped as
`\\uXXXX` (so the bytes are ASCII, hence also UTF-8, and a client's lone surrogate in a `user`
string cannot break encoding), no NaN or Infinity. `hash` is the lowercase hex SHA-256 of
those bytes. The line written is exactly those bytes with `,"hash":"<hex>"` inserted before
the final `}`, plus `\\n`, so a verifier in any language can check a line without
re-serialising: drop the hash field from the line's bytes and hash the rest.

Chain fields: `v` (format, 1), `chain` (random id, 16 hex digits, fixed for the chain's
life), `seq` (1, 2, ... with no gaps), `prev` (the previous record's `hash`; 64 zeros for
seq 1), `kind`: `request`, `rotate` (ends a rotated file), `prune` (lists deleted files),
`start` (a process opened the sink) or `close` (a clean shutdown;
a `start` not preceded by `close` marks a crash, before which up to `FLUSH_SECONDS` of records
may never have been written: they were never part of the chain, so it cannot show them).

One chain per sink. A file sink continues the chain found at the end of its file (or of its
newest rotated file) when it starts, so a restarted worker extends its predecessor's chain;
with `--workers N` every worker has its own file (`main.py`), hence its own chain and no lock.

Writes: records are sealed (hashed) when the request ends and buffered; the buffer is written
with one `write` every `FLUSH_SECONDS`, at `FLUSH_LINES` lines and on shutdown (a `write` per
request cost about 5% of the gateway's CPU). fsync (`fsync_seconds`): > 0 fsyncs at most that
often after a write, in a thread on a duplicated descriptor so the event loop never waits for
the disk; 0 fsyncs after every write (still in a thread); < 0 never, except on rotation and
shutdown, which always fsync (inline: rare). So a process crash loses at most the unwritten
buffer (0.1 s); a machine crash loses at most the last `fsync_seconds` of written records.

Rotation and retention: rotation is decided when a record is sealed (`max_bytes` > 0 and the
record would take the file past it, or the file is `rotate_seconds` old), so the file can be
ended by a `rotate` record in its own chain saying when its last record's retention ends
(`expires`); the file is then fsynced and renamed `FILE.1` (older ones shift up by one) and a
new FILE continues the same chain. `prune` (after each rotation, hourly on the event loop, and
at start) deletes rotated files that have expired, and with `keep` > 0 those beyond `keep`,
after a `prune` record listing them is on disk (see `auditretention.py`; `auditverify.py`
accepts exactly those gaps). Every time rule reads `clock`, so tests run years in an instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from llmplatform.contract.names import DEFAULT_RETENTION_DAYS
from llmplatform.gateway.auditretention import DAY_SECONDS, FileFacts, file_facts, parse_time, scan_expiry

log = logging.getLogger("llmplatform.gateway.audit")

FORMAT = 1
GENESIS = "0" * 64
FLUSH_SECONDS = 0.1
FLUSH_LINES = 256
PIPE_BUF = 4096
"""Writes of at most this many bytes to a pipe are atomic, so workers sharing stdout never
interleave inside a line."""
TAIL_BYTES = 65536
"""How far back from a file's end to look for the last record when resuming its chain."""
ROTATE_RECORD_ROOM = 512
"""Bytes kept free in a file for its closing `rotate` record, so no file exceeds max_bytes."""
PRUNE_SECONDS = 3600.0
"""How often a running sink looks for expired files (besides after every rotation)."""


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
"""The canonical form's encoder, built once: `json.dumps` with these options would construct a
new encoder for every record (one per request)."""


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes `hash` covers (see the module docstring); `record` must not contain `hash`."""
    return _CANONICAL.encode(record).encode("ascii")


def seal(record: dict[str, Any]) -> tuple[bytes, str]:
    """The line to write for `record` (chain fields already set) and its hash."""
    body = canonical(record)
    digest = hashlib.sha256(body).hexdigest()
    return body[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}\n', digest


def rfc3339(timestamp: float) -> str:
    """`2026-11-30T01:02:03.456789Z`: the date and time to the second formatted once per second
    (`_second`), the microseconds appended (exactly what `datetime.isoformat` writes)."""
    second = int(timestamp // 1)
    micros = round((timestamp - second) * 1_000_000)
    if micros >= 1_000_000:  # rounded up into the next second, as datetime does
        second, micros = second + 1, micros - 1_000_000
    return f"{_second(second)}.{micros:06d}Z"


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def request_record(ctx: Any, latency: float) -> dict[str, Any]:
    """The audit fields of one finished request (`ctx` is the server's per-request Ctx). Never
    content: the request and response appear only as SHA-256 digests."""
    return {
        "kind": "request",
        "time": rfc3339(time.time() - latency),
        "request_id": ctx.request_id,
        "client_request_id": getattr(ctx, "client_request_id", None),
        "api": ctx.endpoint,
        "endpoint": ctx.form,
        "tenant": ctx.tenant if ctx.tenant != "none" else None,
        "user": ctx.user,
        "key_name": ctx.key,
        "model": ctx.model if ctx.model != "none" else None,
        "tier": ctx.tier if ctx.tier != "none" else None,
        "fallback_level": ctx.fallback_level,
        "classification": getattr(ctx, "classification", None),
        "findings": dict(getattr(ctx, "findings", None) or {}),
        "redacted": bool(getattr(ctx, "redacted", False)),
        "cache": getattr(ctx, "cache", None),
        "tokens_in": ctx.tokens_in,
        "tokens_out": ctx.tokens_out,
        "cost_usd": round(ctx.cost, 9),
        "status": ctx.status,
        "error_code": ctx.error_code,
        "latency_ms": round(latency * 1000, 3),
        "use_case": ctx.use_case,
        "request_sha256": ctx.request_sha256,
        "response_sha256": ctx.response_sha256,
        "retention_days": getattr(ctx, "retention_days", None),
    }


def minimal_record(ctx: Any, latency: float) -> dict[str, Any]:
    """The record written when `request_record` itself failed: the fields that cannot fail
    (strings and numbers the gateway set), so a request is never left without its record."""
    tokens_in, tokens_out = ctx.tokens_in, ctx.tokens_out
    return {
        "kind": "request",
        "time": rfc3339(time.time() - latency),
        "request_id": str(ctx.request_id),
        "api": str(ctx.endpoint),
        "endpoint": str(ctx.form),
        "tenant": str(ctx.tenant),
        "status": int(ctx.status),
        "error_code": "audit_record_incomplete",
        "tokens_in": tokens_in if isinstance(tokens_in, int) else None,
        "tokens_out": tokens_out if isinstance(tokens_out, int) else None,
    }


STREAM_SHA256: web.ResponseKey[Any] = web.ResponseKey("llmplatform_stream_sha256")
"""On a streamed response: the SHA-256 of every byte written to its body so far."""


async def hash_stream(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: hash the body bytes of a streamed response as they are
    written, whoever wrote the handler (a plain Response's body is hashed whole at the end)."""
    if isinstance(response, web.Response):
        return
    hasher = hashlib.sha256()
    response[STREAM_SHA256] = hasher
    write, write_eof = response.write, response.write_eof

    async def hashed_write(data: bytes | bytearray | memoryview) -> None:
        hasher.update(data)
        await write(data)

    async def hashed_write_eof(data: bytes = b"") -> None:
        hasher.update(data)
        await write_eof(data)

    response.write = hashed_write  # type: ignore[method-assign]
    response.write_eof = hashed_write_eof  # type: ignore[method-assign]


def response_sha256(response: web.StreamResponse | None) -> str | None:
    """SHA-256 of the body bytes sent to the client (for a stream: the whole SSE body)."""
    if isinstance(response, web.Response):
        body = response.body
        return hashlib.sha256(body).hexdigest() if isinstance(body, bytes) else None
    if response is None:
        return None
    hasher = response.get(STREAM_SHA256)
    return hasher.hexdigest() if hasher is not None else None


def rotated(path: str, n: int) -> str:
    return f"{path}.{n}"


def last_record(path: str) -> tuple[dict[str, Any] | None, bool]:
    """The last whole, parseable record of a file (None if there is none) and whether the
    file ends in a torn line (no final newline: a write cut short by a crash or a full disk)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        return None, False
    torn = bool(tail) and not tail.endswith(b"\n")
    for line in reversed(tail.split(b"\n")[:-1]):  # the last piece is b"" or the torn line
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("hash"), str) and "chain" in record:
            return record, torn
    return None, torn


def _fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        log.error("audit log fsync failed: %s", exc)
    finally:
        os.close(fd)


class AuditSink:
    """A hash chain written to `path` (None: standard output); see the module docstring."""

    def __init__(
        self,
        path: str | None,
        *,
        max_bytes: int = 0,
        keep: int = 5,
        fsync_seconds: float = 1.0,
        rotate_seconds: float = 0.0,
        default_retention_days: int = DEFAULT_RETENTION_DAYS,
        prune_seconds: float = PRUNE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.fsync_seconds = fsync_seconds
        self.rotate_seconds = rotate_seconds
        self.default_retention_days = default_retention_days
        """Retention of records that carry none (no tenant); the gateway sets it on reload."""
        self.prune_seconds = prune_seconds
        self.clock = clock
        self.chain = os.urandom(8).hex()
        self.seq = 0
        self.head = GENESIS
        self._fd: int | None = None
        self._size = 0
        self._planned = 0
        """Bytes of the current file once every buffered line is written (rotation is decided
        when a record is sealed, so the `rotate` record can end the file it belongs to)."""
        self._opened_at = 0.0
        self._expires = 0.0
        """When the current file's last-expiring record expires."""
        self._lines: list[bytes | None] = []
        """Sealed lines waiting to be written; None marks a rotation."""
        self._timer: asyncio.TimerHandle | None = None
        self._fsync_timer: asyncio.TimerHandle | None = None
        self._prune_timer: asyncio.TimerHandle | None = None
        self._last_fsync = 0.0
        self._dirty = False
        self._closed = False
        self._prune_due = False
        self._pruning = False
        self._facts: dict[tuple[int, int, int], FileFacts] = {}
        if path is not None:
            self._resume(path)
            self._open()
            self._planned = self._size  # a resumed file counts towards rotation
        self.write({"kind": "start", "time": rfc3339(self.clock()), "pid": os.getpid()})
        if path is not None:
            self.prune()  # after a long stop, files may have expired meanwhile

    def _resume(self, path: str) -> None:
        """Continue the chain at the end of the file (or of its newest rotated file)."""
        record, torn = last_record(path)
        empty = not os.path.exists(path) or os.path.getsize(path) == 0
        if record is None and empty and os.path.exists(rotated(path, 1)):
            record, _ = last_record(rotated(path, 1))
        if torn:
            with open(path, "ab") as f:  # end the torn line so the next record starts cleanly
                f.write(b"\n")
            log.error("audit log %s ended in a torn line; `audit verify` will report it", path)
        if record is not None and isinstance(record.get("seq"), int):
            self.chain, self.seq, self.head = str(record["chain"]), record["seq"], str(record["hash"])
        if not empty:  # what the records already in the file need (read once, at start)
            self._expires = scan_expiry(path, self.default_retention_days)
            with open(path, "rb") as f:
                first = f.readline()
            try:
                started = parse_time(json.loads(first).get("time"))
            except (ValueError, AttributeError):
                started = None
            self._opened_at = started if started is not None else os.stat(path).st_mtime

    def _open(self) -> None:
        assert self.path is not None
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size
        if self._size == 0:
            self._opened_at = self.clock()

    # -- records ---------------------------------------------------------------------------

    def _seal(self, record: dict[str, Any]) -> bytes:
        self.seq += 1
        record.update(v=FORMAT, chain=self.chain, seq=self.seq, prev=self.head)
        line, self.head = seal(record)
        return line

    def _buffer(self, line: bytes, days: Any) -> None:
        if not isinstance(days, int) or days < 1:
            days = self.default_retention_days
        self._expires = max(self._expires, self.clock() + days * DAY_SECONDS)
        self._planned += len(line)
        self._lines.append(line)

    def write(self, record: dict[str, Any]) -> str:
        """Chain, seal and buffer one record; returns its hash. The chain fields are added to
        `record` itself (callers pass a fresh dict: copying it cost a 27-key dict per request).
        When the record would take the file past `max_bytes`, or the file is `rotate_seconds`
        old, the file is ended first with a `rotate` record and a new one begins."""
        line = self._seal(record)
        if self.path is not None and self._rotation_due(len(line)):
            self.seq, self.head = self.seq - 1, str(record["prev"])  # unseal; re-sealed below
            self._end_file()
            line = self._seal(record)
        self._buffer(line, record.get("retention_days"))
        if len(self._lines) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no event loop (tools, tests): write at once
                self.flush()
        return self.head

    def _rotation_due(self, next_line: int) -> bool:
        if self._planned == 0:
            return False
        if self.max_bytes > 0 and self._planned + next_line + ROTATE_RECORD_ROOM > self.max_bytes:
            return True
        return self.rotate_seconds > 0 and self.clock() - self._opened_at >= self.rotate_seconds

    def _end_file(self) -> None:
        """Seal the current file's `rotate` record (when its records expire) and mark the
        rotation in the buffer; the next record starts the new file."""
        now = self.clock()
        expires = self._expires or now  # the records' own expiry: the trailer adds none
        trailer = {"kind": "rotate", "time": rfc3339(now), "expires": rfc3339(expires)}
        self._lines.append(self._seal(trailer))
        self._lines.append(None)
        self._planned, self._expires, self._opened_at = 0, 0.0, now

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        if self.path is None:
            self._write_stdout([line for line in lines if line is not None])
            return
        if self._fd is None:  # a record after close(): a request that outlived shutdown
            self._open()
        chunk: list[bytes] = []
        for line in lines:
            if line is None:  # the rotation decided when the records were sealed
                self._write(b"".join(chunk), len(chunk))
                chunk = []
                self.rotate()
                continue
            chunk.append(line)
        self._write(b"".join(chunk), len(chunk))
        self._dirty = True
        self._schedule_fsync()
        if self._prune_due and not self._pruning:
            self.prune()

    def _write(self, data: bytes, records: int) -> None:
        assert self._fd is not None
        try:
            done = 0
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            # The chain will show the gap (`audit verify` names it); the gateway keeps serving.
            log.error("audit log write failed, %d records lost: %s", records, exc)
        self._size += len(data)

    def _write_stdout(self, lines: list[bytes]) -> None:
        out = sys.stdout.buffer
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > PIPE_BUF:
                out.write(b"".join(chunk))
                out.flush()
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        out.write(b"".join(chunk))
        out.flush()

    # -- durability ------------------------------------------------------------------------

    def _schedule_fsync(self) -> None:
        if self.fsync_seconds < 0 or self._fsync_timer is not None:
            return
        wait = max(0.0, self._last_fsync + self.fsync_seconds - time.monotonic())
        try:
            self._fsync_timer = asyncio.get_running_loop().call_later(wait, self._fsync_async)
        except RuntimeError:
            self.fsync()

    def _fsync_async(self) -> None:
        self._fsync_timer = None
        if self._fd is None or not self._dirty:
            return
        self._dirty = False
        self._last_fsync = time.monotonic()
        # On a duplicate, so a rotation or close meanwhile cannot pull the descriptor away.
        asyncio.get_running_loop().run_in_executor(None, _fsync_and_close, os.dup(self._fd))

    def fsync(self) -> None:
        """fsync now, on the calling thread."""
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
            self._last_fsync = time.monotonic()

    def _rotated_indices(self) -> list[int]:
        assert self.path is not None
        directory = os.path.dirname(os.path.abspath(self.path))
        prefix = os.path.basename(self.path) + "."
        found = []
        for name in os.listdir(directory):
            rest = name[len(prefix) :] if name.startswith(prefix) else ""
            if rest.isdigit() and not rest.startswith("0"):
                found.append(int(rest))
        return sorted(found)

    def rotate(self) -> None:
        """Rename FILE to FILE.1 (older ones shift up by one; gaps left by pruning stay) and
        open a new FILE; the files to delete are then chosen by `prune`."""
        assert self.path is not None and self._fd is not None
        self._dirty = True
        self.fsync()
        os.close(self._fd)
        self._fd = None
        for n in reversed(self._rotated_indices()):
            os.rename(rotated(self.path, n), rotated(self.path, n + 1))
        os.rename(self.path, rotated(self.path, 1))
        self._open()
        self._sync_dir()
        self._prune_due = True

    def _sync_dir(self) -> None:
        assert self.path is not None
        dir_fd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the renames durable too
        finally:
            os.close(dir_fd)

    # -- retention -------------------------------------------------------------------------

    def _file_facts(self, path: str) -> FileFacts:
        st = os.stat(path)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        facts = self._facts.get(key)
        if facts is None:
            facts = self._facts[key] = file_facts(path, self.default_retention_days, TAIL_BYTES)
        return facts

    def prune(self) -> list[str]:
        """Delete the rotated files whose every record has expired (and, with `keep` > 0, the
        oldest beyond `keep`), after recording them in the chain: a `prune` record lists each
        file's first and last seq and hashes, so `audit verify` reports the gap as pruned here
        rather than as deleted records. Returns the names deleted."""
        if self.path is None or self._pruning:
            return []
        self._prune_due = False
        self._pruning = True
        try:
            return self._prune(self.path)
        finally:
            self._pruning = False

    def _prune(self, path: str) -> list[str]:
        now = self.clock()
        doomed: list[tuple[str, dict[str, Any]]] = []
        for n in self._rotated_indices():
            name = rotated(path, n)
            try:
                facts = self._file_facts(name)
            except OSError as exc:
                log.error("audit retention: cannot read %s: %s", name, exc)
                continue
            if facts.expires <= now:
                doomed.append((name, facts.entry(os.path.basename(name), "retention")))
            elif self.keep > 0 and n > self.keep:
                log.error(
                    "audit log %s deleted before its retention (%s) because --audit-log-keep is %d",
                    name,
                    rfc3339(facts.expires),
                    self.keep,
                )
                doomed.append((name, facts.entry(os.path.basename(name), "keep")))
        if not doomed:
            return []
        self.write({"kind": "prune", "time": rfc3339(now), "pruned": [entry for _, entry in doomed]})
        self.flush()
        self._dirty = True
        self.fsync()  # the record of the deletion is durable before the deletion
        for name, _ in doomed:
            os.unlink(name)
        self._sync_dir()
        log.info("audit retention pruned %d file(s)", len(doomed), extra={"files": [n for n, _ in doomed]})
        return [name for name, _ in doomed]

    def _prune_tick(self) -> None:
        """Hourly (`prune_seconds`): rotate a file that is due even without traffic, prune."""
        self._prune_timer = None
        if self._closed:
            return
        if (
            self.rotate_seconds > 0
            and self._planned > 0
            and self.clock() - self._opened_at >= self.rotate_seconds
        ):
            self._end_file()
            self.flush()
        self.prune()
        self.start_timers()

    def start_timers(self) -> None:
        """Run `_prune_tick` every `prune_seconds` on the running loop (the gateway calls this
        once it serves; tools and tests call `prune` themselves)."""
        if self.path is None or self._prune_timer is not None or self.prune_seconds <= 0:
            return
        with contextlib.suppress(RuntimeError):  # no event loop: the caller prunes itself
            self._prune_timer = asyncio.get_running_loop().call_later(self.prune_seconds, self._prune_tick)

    def close(self) -> None:
        """Write the chain's `close` record, flush, fsync and close. The head hash is logged
        so that it can be kept elsewhere: it anchors the log against truncation."""
        if self._closed:
            return
        self._closed = True
        if self._prune_timer is not None:
            self._prune_timer.cancel()
            self._prune_timer = None
        head = self.write({"kind": "close", "time": rfc3339(self.clock())})
        log.info("audit chain closed", extra={"chain": self.chain, "seq": self.seq, "head": head})
        self.flush()
        if self._fsync_timer is not None:
            self._fsync_timer.cancel()
            self._fsync_timer = None
        if self._fd is not None:
            self._dirty = True
            self.fsync()
            os.close(self._fd)
            self._fd = None
