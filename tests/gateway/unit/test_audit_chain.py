"""The audit hash chain and `llmplatform audit verify`: intact logs pass, every kind of
tampering fails naming the first bad record, rotation and restarts keep one chain."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmplatform.cli import main
from llmplatform.gateway.audit import GENESIS, AuditSink, canonical, rfc3339
from llmplatform.gateway.auditverify import Problem, summary, verify


def write_log(path: Path, n: int, **sink_args: int) -> AuditSink:
    sink = AuditSink(str(path), **sink_args)  # no event loop: every record is written at once
    for i in range(n):
        sink.write({"kind": "request", "request_id": f"r{i}", "status": 200, "user": "ü\ud800"})
    sink.close()
    return sink


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def edit_line(path: Path, index: int, edit: Callable[[bytes], bytes]) -> None:
    """Rewrite line `index` (0-based) of the log with `edit`, as an attacker with the file would."""
    raw = lines(path)
    raw[index] = edit(raw[index])
    path.write_bytes(b"".join(raw))


def failure(paths: list[Path], partial: bool = False) -> Problem:
    report = verify([str(p) for p in paths], partial=partial)
    assert report.problem is not None, summary(report)
    return report.problem


def where(problem: Problem) -> str:
    return f"{problem.path}:{problem.line}"


def test_intact_log_verifies_and_each_line_hashes_without_reserialising(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    sink = write_log(log, 5)
    report = verify([str(log)])
    assert report.problem is None
    records = [json.loads(raw) for raw in lines(log)]
    assert [r["kind"] for r in records] == ["start"] + ["request"] * 5 + ["close"]
    assert [r["seq"] for r in records] == list(range(1, 8)) and records[0]["prev"] == GENESIS
    for raw, record in zip(lines(log), records, strict=True):
        # the documented recipe: drop `,"hash":"<hex>"` from the line's bytes, hash the rest
        unsealed = re.sub(rb',"hash":"[0-9a-f]{64}"}\n$', b"}", raw)
        assert hashlib.sha256(unsealed).hexdigest() == record["hash"]
        assert unsealed == canonical({k: v for k, v in record.items() if k != "hash"})
        assert raw.isascii()  # non-ASCII (even a lone surrogate) is escaped
    assert all(a["hash"] == b["prev"] for a, b in itertools.pairwise(records))
    text = summary(report)
    assert "5 requests" in text and "closed cleanly" in text and sink.head in text


def test_edited_record_fails_at_that_line(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log, 5)
    edit_line(log, 2, lambda line: line.replace(b'"status":200', b'"status":201'))
    problem = failure([log])
    assert where(problem) == f"{log}:3" and "the record was edited" in problem.reason


def test_edited_and_resealed_record_breaks_the_next_link(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log, 5)

    def reseal(line: bytes) -> bytes:
        record = json.loads(line)
        del record["hash"]
        record["status"] = 201
        body = canonical(record)
        return body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'

    edit_line(log, 2, reseal)
    problem = failure([log])
    assert where(problem) == f"{log}:4" and problem.seq == 4
    assert "prev is not the previous record's hash" in problem.reason


def test_whitespace_change_is_not_canonical(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log, 3)
    edit_line(log, 1, lambda line: line.replace(b'"status":200', b'"status": 200'))
    assert "not in canonical form" in failure([log]).reason


@pytest.mark.parametrize(
    ("change", "line", "reason"),
    [
        (lambda r: r[:2] + r[3:], 3, "seq jumps from 2: records deleted"),
        (lambda r: [*r[:3], r[1], *r[3:]], 4, "seq goes back from 3"),
        (lambda r: [*r[:2], r[3], r[2], *r[4:]], 3, "seq jumps from 2"),
        (lambda r: r[1:], 1, "starts at seq 2, not 1"),
        (lambda r: [*r[:-1], r[-1][:-20]], 7, "truncated last line"),
    ],
    ids=["delete", "insert-duplicate", "reorder", "delete-first", "truncate-last-line"],
)
def test_tampering(tmp_path: Path, change: object, line: int, reason: str) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log, 5)
    log.write_bytes(b"".join(change(lines(log))))  # type: ignore[operator]
    problem = failure([log])
    assert where(problem) == f"{log}:{line}" and reason in problem.reason, problem


def test_cut_tail_passes_but_says_no_close_record(tmp_path: Path) -> None:
    """What a chain cannot show by itself: whole records cut off the end. The summary says the
    chain did not close cleanly and prints the head hash to compare with an anchored copy."""
    log = tmp_path / "audit.jsonl"
    sink = write_log(log, 5)
    log.write_bytes(b"".join(lines(log)[:-2]))
    report = verify([str(log)])
    assert report.problem is None
    assert "no close record" in summary(report) and sink.head not in summary(report)


def test_rotation_keeps_one_chain_across_files_in_any_order(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log, 60, max_bytes=4000, keep=50)
    files = sorted(tmp_path.iterdir())
    assert len(files) >= 4 and all(f.stat().st_size <= 4000 for f in files)
    firsts = {f.name: json.loads(lines(f)[0]) for f in files}
    # the first record of each newer file chains to the last record of the one before
    assert firsts["audit.jsonl.1"]["prev"] == json.loads(lines(tmp_path / "audit.jsonl.2")[-1])["hash"]
    report = verify([str(f) for f in files])  # glob order, not chronological
    assert report.problem is None
    assert "60 requests" in summary(report) and f"{len(files)} file(s)" in summary(report)

    # a missing middle file is a broken link that names both sides
    missing = tmp_path / "audit.jsonl.2"
    problem = failure([f for f in files if f != missing])
    assert where(problem) == f"{tmp_path / 'audit.jsonl.1'}:1" and "records deleted" in problem.reason
    assert f"{tmp_path / 'audit.jsonl.3'}:" in problem.reason

    # the last record of an older file removed: the link into the next file breaks
    older = tmp_path / "audit.jsonl.3"
    older.write_bytes(b"".join(lines(older)[:-1]))
    assert where(failure(files)) == f"{tmp_path / 'audit.jsonl.2'}:1"


def test_rotation_deletes_beyond_keep_recorded_in_the_chain(tmp_path: Path) -> None:
    """Files deleted for --audit-log-keep are listed in `prune` records first, so the rest
    still verifies (the summary says pruned, and why); a file deleted by hand does not."""
    log = tmp_path / "audit.jsonl"
    write_log(log, 60, max_bytes=2000, keep=2)
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    report = verify([str(f) for f in files])
    assert report.problem is None, report.problem
    assert "pruned (keep" in summary(report)
    # deleting a file without a prune record is still a broken link
    problem = failure([files[0], files[2]])
    assert "records deleted" in problem.reason
    first = tmp_path / "audit.jsonl.2"
    first.write_bytes(b"".join(lines(first)[1:]))  # its first record cut: the prefix no longer matches
    assert "not 1" in failure(files).reason
    report = verify([str(f) for f in files], partial=True)
    assert report.problem is None


def test_restart_continues_the_chain_and_a_crash_shows(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    crashed = AuditSink(str(log))
    crashed.write({"kind": "request", "request_id": "a"})
    crashed.flush()  # and then the process dies: no close record
    write_log(log, 2)
    records = [json.loads(raw) for raw in lines(log)]
    assert len({r["chain"] for r in records}) == 1
    assert [r["kind"] for r in records] == ["start", "request", "start", "request", "request", "close"]
    report = verify([str(log)])
    assert report.problem is None and "1 restart(s) after a crash" in summary(report)


def test_restart_after_a_torn_write_ends_the_line_and_verify_names_it(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log, 2)
    with log.open("ab") as f:
        f.write(b'{"kind":"request","cha')  # a write cut short by a crash or a full disk
    write_log(log, 1)
    problem = failure([log])
    assert where(problem) == f"{log}:5" and problem.reason == "not a JSON record"


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "audit.jsonl"
    write_log(log, 3)
    assert main(["audit", "verify", str(log)]) == 0
    assert "OK: 5 records in 1 file(s), 1 chain(s) intact" in capsys.readouterr().out
    log.write_bytes(b"".join(lines(log)[:2] + lines(log)[3:]))
    assert main(["audit", "verify", str(log)]) == 1
    assert capsys.readouterr().out.startswith(f"FAILED: {log}:3: seq 4:")
    assert main(["audit", "verify", str(tmp_path / "missing.jsonl")]) == 2


def test_record_times_are_what_isoformat_writes() -> None:
    """`rfc3339` formats each second once: it still writes exactly `datetime.isoformat`'s text,
    microseconds rounded as datetime rounds them (into the next second too)."""
    rng = random.Random(3)
    times = [rng.uniform(0, 4e9) for _ in range(20000)] + [0.0, 1.9999995, 1.9999996, 1e9 + 0.9999999]
    for t in times:
        expected = datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        assert rfc3339(t) == expected, t
