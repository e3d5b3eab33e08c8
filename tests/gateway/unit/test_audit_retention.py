"""Audit retention on a clock the test controls: files rotate by time, are deleted only once
every record in them has expired, and `audit verify` reports what was pruned (at which hash)
instead of calling it tampering. No sleeping: the sink's clock is a number the test moves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmplatform.gateway.audit import AuditSink
from llmplatform.gateway.auditverify import summary, verify

DAY = 86400.0
START = 1_800_000_000.0  # 2027-01-15


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def day(self, n: float) -> None:
        self.now = START + n * DAY


def request(tenant: str, days: int | None) -> dict[str, Any]:
    return {"kind": "request", "tenant": tenant, "status": 200, "retention_days": days}


def names(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir())


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def files_of(tmp: Path) -> list[str]:
    return [str(p) for p in sorted(tmp.iterdir())]


def day_sink(tmp: Path, clock: Clock, **kwargs: Any) -> AuditSink:
    """A sink that rotates once a day (by time only), with the platform's default of 90 days
    for records of no tenant."""
    return AuditSink(str(tmp / "audit.jsonl"), rotate_seconds=DAY, fsync_seconds=-1, clock=clock, **kwargs)


def test_files_rotate_daily_and_end_with_when_they_expire(tmp_path: Path) -> None:
    clock = Clock()
    sink = day_sink(tmp_path, clock)
    sink.write(request("gdpr-team", 90))
    clock.day(0.5)
    sink.write(request("gdpr-team", 90))
    assert names(tmp_path) == ["audit.jsonl"]  # half a day: no rotation yet
    clock.day(1)
    sink.write(request("hipaa-team", 2557))
    assert names(tmp_path) == ["audit.jsonl", "audit.jsonl.1"]
    first = records(tmp_path / "audit.jsonl.1")
    assert [r["kind"] for r in first] == ["start", "request", "request", "rotate"]
    # the last gdpr record was written at day 0.5: the file expires 90 days after it
    assert first[-1]["expires"] == "2027-04-15T20:00:00.000000Z"
    assert records(tmp_path / "audit.jsonl")[0]["prev"] == first[-1]["hash"]
    sink.close()
    assert verify(files_of(tmp_path)).problem is None


def test_a_file_is_deleted_only_after_its_longest_retention(tmp_path: Path) -> None:
    clock = Clock()
    sink = day_sink(tmp_path, clock)
    sink.write(request("gdpr-team", 90))  # day 0: file A (start + gdpr)
    clock.day(1)
    sink.write(request("hipaa-team", 2557))  # file B: hipaa, and a gdpr record beside it
    sink.write(request("gdpr-team", 90))
    clock.day(2)
    sink.write(request("gdpr-team", 90))  # file C: gdpr only
    clock.day(3)
    sink.write(request("none", None))  # file D: no tenant (default 90 days)
    assert names(tmp_path) == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]

    clock.day(89.9)  # nothing has expired yet
    sink.write(request("none", None))
    assert sink.prune() == []
    assert len(names(tmp_path)) == 5

    clock.day(91)  # A (last record day 0 + 90) has expired; C (day 2) and D (day 3) not yet
    sink.write(request("none", None))
    assert sink.prune() == []  # A went already, on the rotation this write made
    kept = names(tmp_path)
    assert len(kept) == 5, kept  # A gone, a new file in its place at the front
    report = verify(files_of(tmp_path))
    assert report.problem is None, report.problem
    assert "records before seq 4 pruned (retention" in summary(report)

    clock.day(93.5)  # C and D expired; B (hipaa) stays: a gap in the middle of the chain
    sink.write(request("none", None))
    prunes = sorted(
        (r for f in tmp_path.iterdir() for r in records(f) if r["kind"] == "prune"), key=lambda r: r["seq"]
    )
    assert [len(p["pruned"]) for p in prunes] == [1, 2]
    hipaa_file = [f for f in tmp_path.iterdir() if any(r.get("tenant") == "hipaa-team" for r in records(f))]
    assert len(hipaa_file) == 1
    report = verify(files_of(tmp_path))
    assert report.problem is None, report.problem
    text = summary(report)
    assert "records before seq 4 pruned" in text and "pruned (retention, recorded at seq" in text

    clock.day(1 + 2557 + 1)  # the hipaa record's seven years are over
    sink.write(request("none", None))
    assert not any(any(r.get("tenant") == "hipaa-team" for r in records(f)) for f in tmp_path.iterdir())
    sink.close()
    report = verify(files_of(tmp_path))
    assert report.problem is None, report.problem
    assert "closed cleanly" in summary(report)


def test_a_restart_after_a_long_stop_prunes_and_keeps_the_chain(tmp_path: Path) -> None:
    clock = Clock()
    sink = day_sink(tmp_path, clock)
    sink.write(request("gdpr-team", 90))
    clock.day(1)
    sink.write(request("gdpr-team", 90))
    sink.close()
    clock.day(200)  # the gateway was down; the rotated file expired meanwhile
    again = day_sink(tmp_path, clock)
    assert names(tmp_path) == ["audit.jsonl"]
    again.close()
    kinds = [r["kind"] for r in records(tmp_path / "audit.jsonl")]
    assert kinds[-3:] == ["start", "prune", "close"]
    report = verify(files_of(tmp_path))
    assert report.problem is None and "records before seq" in summary(report)


def test_a_forged_or_wrong_prune_entry_is_still_tampering(tmp_path: Path) -> None:
    clock = Clock()
    sink = day_sink(tmp_path, clock)
    sink.write(request("gdpr-team", 90))
    clock.day(1)
    sink.write(request("gdpr-team", 90))
    clock.day(100)
    sink.write(request("gdpr-team", 90))
    sink.close()
    current = tmp_path / "audit.jsonl"
    raw = current.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(raw) if '"kind":"prune"' in line)
    # claim a different last hash: the gap no longer matches, and the record's own hash breaks
    raw[index] = raw[index].replace('"last_hash":"', '"last_hash":"0', 1)
    current.write_text("".join(raw))
    report = verify(files_of(tmp_path))
    assert report.problem is not None
    assert "not 1" in report.problem.reason or "edited" in report.problem.reason


def test_keep_deletes_early_but_says_so(tmp_path: Path) -> None:
    clock = Clock()
    sink = day_sink(tmp_path, clock, keep=1)
    for day in range(4):
        clock.day(day)
        sink.write(request("hipaa-team", 2557))
    sink.close()
    assert names(tmp_path) == ["audit.jsonl", "audit.jsonl.1"]
    report = verify(files_of(tmp_path))
    assert report.problem is None and "pruned (keep" in summary(report)
