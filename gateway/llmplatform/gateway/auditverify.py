"""`llmplatform audit verify`: check audit logs' hash chains, name the first bad record.

Why a separate module: verifying runs offline, on copies of the logs, far from the gateway;
it shares only the canonical form (`audit.seal`) with the writer, so the two cannot disagree
about what a hash covers.

Files may be given in any order (`audit.jsonl*`): each file is placed by the chain and `seq`
of its first record, and records are then checked in chain order, so a rotated set verifies
as one chain and a missing, edited or reordered file still shows up as a broken link. Each
record must hash to its `hash` and its bytes must be the canonical form; within a chain `seq`
must go up by one and `prev` must be the previous record's `hash`; a chain must start at
seq 1 unless `partial` (its earlier files were rotated away), or unless the chain's own
`prune` records explain the gap: the gateway deletes a rotated file (retention, or
`--audit-log-keep`) only after writing a `prune` record that lists the file's first and last
seq, the `prev` of its first record and the hash of its last, so a missing prefix or middle is
accepted when those entries cover it exactly, hash for hash, and the summary reports it as
pruned at that hash; anything else missing is still a broken link. What a chain alone cannot show:
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
    pruned: list[str] = field(default_factory=list)
    """Gaps explained by the chain's own `prune` records (retention or --audit-log-keep)."""


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


@dataclass(frozen=True)
class PrunedFile:
    """One file a `prune` record says was deleted: the seqs it held and the hashes at its ends."""

    first_seq: int
    prev: str
    last_seq: int
    last_hash: str
    reason: str
    at_seq: int
    """seq of the `prune` record that lists it."""


Pruned = dict[str, dict[int, PrunedFile]]
"""chain id -> first seq -> the pruned file that started there."""


def _pruned_files(paths: list[str]) -> Pruned:
    """Every file listed by a `prune` record in `paths` (a first, cheap pass: only lines that
    name the kind are parsed). The records themselves are verified in the main pass, so a
    forged one still fails there."""
    out: Pruned = {}
    for path in paths:
        with open(path, "rb") as f:
            for raw in f:
                if b'"kind":"prune"' not in raw:
                    continue
                try:
                    record = json.loads(raw)
                    for e in record["pruned"]:
                        item = PrunedFile(
                            int(e["first_seq"]),
                            str(e["prev"]),
                            int(e["last_seq"]),
                            str(e["last_hash"]),
                            str(e.get("reason", "")),
                            int(record["seq"]),
                        )
                        # a file of an earlier chain (the log restarted afresh) names its own
                        out.setdefault(str(e.get("chain") or record["chain"]), {})[item.first_seq] = item
                except (ValueError, KeyError, TypeError):
                    continue
    return out


def _explained_gap(
    pruned: dict[int, PrunedFile], after: int, head: str | None, seq: int, prev: str
) -> str | None:
    """How the records after seq `after` (whose hash is `head`; None: the chain's start is
    gone too) up to `seq` - 1 were pruned, or None when the prune records do not cover them
    exactly, hash for hash."""
    if head is None:  # a pruned prefix: some listed file must end right before `seq`
        last = next((p for p in pruned.values() if p.last_seq == seq - 1 and p.last_hash == prev), None)
        if last is None:
            return None
        return (
            f"records before seq {seq} pruned ({last.reason}, recorded at seq {last.at_seq}; "
            f"last pruned hash {prev})"
        )
    cur, expected, reasons, at = after + 1, head, set(), set()
    while cur < seq:
        item = pruned.get(cur)
        if item is None or item.prev != expected:
            return None
        cur, expected = item.last_seq + 1, item.last_hash
        reasons.add(item.reason)
        at.add(item.at_seq)
    if cur != seq or expected != prev:
        return None
    seqs = ", ".join(str(a) for a in sorted(at))
    return f"seq {after + 1}..{seq - 1} pruned ({', '.join(sorted(reasons))}, recorded at seq {seqs})"


def verify(paths: list[str], *, partial: bool = False) -> Report:
    pruned = _pruned_files(paths)
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
                problem = _link(chains, record, path, number, partial, pruned)
                if problem is not None:
                    return Report(chains, len(paths), problem)
    return Report(chains, len(paths), None)


def _link(
    chains: dict[str, Chain],
    record: dict[str, Any],
    path: str,
    number: int,
    partial: bool,
    pruned: Pruned,
) -> Problem | None:
    chain_id, seq, prev = record["chain"], record["seq"], record["prev"]
    chain = chains.get(chain_id)
    here = f"{path}:{number}"
    gap = None
    if chain is None:
        if seq != 1 or prev != GENESIS:
            gap = _explained_gap(pruned.get(chain_id, {}), 0, None, seq, prev)
        if gap is None and not partial and (seq != 1 or prev != GENESIS):
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
            gap = _explained_gap(pruned.get(chain_id, {}), chain.last_seq, chain.head, seq, prev)
            if gap is None:
                return Problem(path, number, seq, f"seq jumps from {chain.last_seq}: records deleted{where}")
        elif prev != chain.head:
            return Problem(
                path,
                number,
                seq,
                f"prev is not the previous record's hash: record replaced or inserted{where}",
            )
    if gap is not None:
        chain.pruned.append(gap)
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
        if chain.pruned:
            end += "; " + "; ".join(chain.pruned)
        lines.append(
            f"chain {chain.id}: seq {chain.first_seq}..{chain.last_seq}, {chain.requests} requests, "
            f"{len(chain.files)} file(s), {end}; head {chain.head}"
        )
    total = sum(c.records for c in report.chains.values())
    lines.append(f"OK: {total} records in {report.files} file(s), {len(report.chains)} chain(s) intact")
    return "\n".join(lines)
