"""`llmplatform audit verify`: check audit logs' hash chains, name the first bad record.

Why a separate module: verifying runs offline, on copies of the logs, far from the gateway;
it shares only the canonical form (`audit.seal`) with the writer, so the two cannot disagree
about what a hash covers.

Files may be given in any order (`audit.jsonl*`): each file is placed by the chain and `seq`
of its first record, and records are then checked in chain order, so a rotated set verifies
as one chain and a missing, edited or reordered file still shows up as a broken link. Each
record must hash to its `hash` and its bytes must be the canonical form; within a chain `seq`
must go up by one and `prev` must be the previous record's `hash`; a chain must start at
seq 1 unless `partial` (its earlier files were rotated away). What a chain alone cannot show:
records cut off the end (the summary says whether each chain ends with a clean-shutdown
`close` record and prints its head hash, to compare with a copy kept elsewhere), and a log
rewritten from some point on with freshly computed hashes (compare the head hash with an
anchored one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmplatform.gateway.audit import GENESIS, seal


@dataclass
class Problem:
    path: str
    line: int
    seq: int | None
    reason: str

    def __str__(self) -> str:
        seq = f" seq {self.seq}:" if self.seq is not None else ""
        return f"{self.path}:{self.line}:{seq} {self.reason}"


@dataclass
class Chain:
    id: str
    first_seq: int
    last_seq: int = 0
    head: str = GENESIS
    requests: int = 0
    records: int = 0
    closed: bool = False
    crashes: int = 0
    """`start` records not preceded by `close`: restarts after a crash."""
    files: list[str] = field(default_factory=list)
    last_at: str = ""
    """file:line of the chain's last record so far, to name both sides of a broken link."""


@dataclass
class Report:
    chains: dict[str, Chain]
    files: int
    problem: Problem | None


def _first_record(path: str) -> tuple[str, int] | None:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        record = json.loads(first)
        return str(record["chain"]), int(record["seq"])
    except (ValueError, KeyError, TypeError):
        return None


def _check_record(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed record, or the reason the line is not a valid sealed record."""
    if not raw.endswith(b"\n"):
        return None, "truncated last line (no newline): the write was cut short"
    try:
        record = json.loads(raw)
    except ValueError:
        return None, "not a JSON record"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    digest = record.pop("hash", None)
    chain, seq, prev = record.get("chain"), record.get("seq"), record.get("prev")
    if not (isinstance(digest, str) and isinstance(chain, str) and isinstance(prev, str)):
        return None, "missing chain fields (hash, chain, seq, prev)"
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None, "missing chain fields (hash, chain, seq, prev)"
    try:
        line, expected = seal(record)
    except ValueError:
        return None, "not in canonical form"
    if expected != digest:
        return None, "hash does not match the record's content: the record was edited"
    if line != raw:
        return None, "not in canonical form (the bytes were changed without changing the content)"
    record["hash"] = digest
    return record, None


def verify(paths: list[str], *, partial: bool = False) -> Report:
    ordered: list[tuple[tuple[int, str, int], str]] = []
    for i, path in enumerate(paths):
        first = _first_record(path)
        # files whose first line is not a record keep their place at the front, to be reported
        ordered.append(((1, *first) if first else (0, "", i), path))
    ordered.sort()
    chains: dict[str, Chain] = {}
    for _, path in ordered:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                record, reason = _check_record(raw)
                if record is None:
                    return Report(chains, len(paths), Problem(path, number, None, str(reason)))
                problem = _link(chains, record, path, number, partial)
                if problem is not None:
                    return Report(chains, len(paths), problem)
    return Report(chains, len(paths), None)


def _link(
    chains: dict[str, Chain], record: dict[str, Any], path: str, number: int, partial: bool
) -> Problem | None:
    chain_id, seq, prev = record["chain"], record["seq"], record["prev"]
    chain = chains.get(chain_id)
    here = f"{path}:{number}"
    if chain is None:
        if not partial and (seq != 1 or prev != GENESIS):
            return Problem(
                path,
                number,
                seq,
                f"chain {chain_id} starts at seq {seq}, not 1: earlier records are missing "
                "(use --partial when older rotated files were deleted)",
            )
        chain = chains[chain_id] = Chain(chain_id, first_seq=seq)
    else:
        where = f" (previous record at {chain.last_at})"
        if seq <= chain.last_seq:
            return Problem(
                path, number, seq, f"seq goes back from {chain.last_seq}: record reordered or inserted{where}"
            )
        if seq > chain.last_seq + 1:
            return Problem(path, number, seq, f"seq jumps from {chain.last_seq}: records deleted{where}")
        if prev != chain.head:
            return Problem(
                path,
                number,
                seq,
                f"prev is not the previous record's hash: record replaced or inserted{where}",
            )
    chain.last_seq, chain.head, chain.last_at = seq, record["hash"], here
    chain.records += 1
    kind = record.get("kind")
    chain.requests += kind == "request"
    chain.crashes += kind == "start" and chain.records > 1 and not chain.closed
    chain.closed = kind == "close"
    if not chain.files or chain.files[-1] != path:
        chain.files.append(path)
    return None


def summary(report: Report) -> str:
    lines = []
    for chain in report.chains.values():
        end = "closed cleanly" if chain.closed else "no close record (still running, crashed, or cut short)"
        if chain.crashes:
            end += f"; {chain.crashes} restart(s) after a crash"
        lines.append(
            f"chain {chain.id}: seq {chain.first_seq}..{chain.last_seq}, {chain.requests} requests, "
            f"{len(chain.files)} file(s), {end}; head {chain.head}"
        )
    total = sum(c.records for c in report.chains.values())
    lines.append(f"OK: {total} records in {report.files} file(s), {len(report.chains)} chain(s) intact")
    return "\n".join(lines)
