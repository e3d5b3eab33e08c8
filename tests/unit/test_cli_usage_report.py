"""`llmplatform usage report` on audit files written by the gateway's own audit writer
(AuditSink + request_record from a real Ctx): rotated and per-worker files, start/close
records, a torn line, cached hits at zero cost, 4xx refusals, filters and the three formats."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from llmplatform.cli import main
from llmplatform.gateway.audit import AuditSink, request_record
from llmplatform.gateway.context import Ctx


def ctx(tenant: str | None, model: str | None, tokens: tuple[int, int], cost: float, **kw: Any) -> Ctx:
    c = Ctx(request_id="r", endpoint="chat", start=0.0, http=None)  # type: ignore[arg-type]
    c.tenant, c.model = tenant or "none", model or "none"
    c.tokens_in, c.tokens_out, c.cost = tokens[0], tokens[1], cost
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def write(sink: AuditSink, when: str, c: Ctx) -> None:
    record = request_record(c, 0.01)
    record["time"] = when  # the day the request happened (the sink takes the record as given)
    sink.write(record)


@pytest.fixture
def logs(tmp_path: Path) -> list[str]:
    """Worker 0 rotates (small max_bytes) across two days; worker 1 has a refusal, a cached hit
    and an unauthenticated 401; worker 1's file ends in a torn line."""
    w0 = AuditSink(str(tmp_path / "audit.jsonl.w0"), max_bytes=1500, keep=10, fsync_seconds=-1)
    for day, n in (("2026-10-31", 2), ("2026-11-01", 3)):
        for i in range(n):
            write(w0, f"{day}T10:00:0{i}.000000Z", ctx("team-a/team-a", "gpt-4o-mini", (10, 20), 0.000013))
    w0.close()
    w1 = AuditSink(str(tmp_path / "audit.jsonl.w1"), fsync_seconds=-1)
    day = "2026-11-01T11:00:00.000000Z"
    write(w1, day, ctx("team-a/team-a", "gpt-4o-mini", (10, 20), 0.000013))
    write(w1, day, ctx("team-a/team-a", "gpt-4o-mini", (10, 20), 0.0, cache="hit"))
    write(w1, day, ctx("team-b/team-b", None, (0, 0), 0.0, status=429, error_code="rate_limit_exceeded"))
    write(w1, day, ctx("team-b/team-b", "llama-3-8b", (5, 7), 0.0000009))
    write(w1, day, ctx(None, None, (0, 0), 0.0, status=401, error_code="invalid_api_key"))
    w1.close()
    with open(tmp_path / "audit.jsonl.w1", "a") as f:
        f.write('{"v":1,"kind":"request","ti')  # a crash mid-line
    files = sorted(str(p) for p in tmp_path.iterdir())
    assert any(f.endswith(".w0.1") for f in files), "worker 0 should have rotated"
    return files


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["usage", "report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_totals_per_day_tenant_model(logs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *logs, logs[0], "--format", "json")  # one file passed twice
    assert code == 0
    assert "skipped 1 unreadable line" in err
    rows = {(r["period"], r["tenant"], r["model"]): r for r in json.loads(out)}
    assert set(rows) == {
        ("2026-10-31", "team-a/team-a", "gpt-4o-mini"),
        ("2026-11-01", "team-a/team-a", "gpt-4o-mini"),
        ("2026-11-01", "team-b/team-b", "-"),
        ("2026-11-01", "team-b/team-b", "llama-3-8b"),
        ("2026-11-01", "-", "-"),
    }
    a_oct = rows[("2026-10-31", "team-a/team-a", "gpt-4o-mini")]
    assert (a_oct["requests"], a_oct["tokens_in"], a_oct["tokens_out"]) == (2, 20, 40)
    assert a_oct["cost_usd"] == pytest.approx(0.000026)
    a_nov = rows[("2026-11-01", "team-a/team-a", "gpt-4o-mini")]
    # 3 on worker 0 + 1 on worker 1 + 1 cached hit (tokens recorded, no cost)
    assert (a_nov["requests"], a_nov["cached"], a_nov["errors"]) == (5, 1, 0)
    assert a_nov["cost_usd"] == pytest.approx(4 * 0.000013)
    refused = rows[("2026-11-01", "team-b/team-b", "-")]
    assert (refused["requests"], refused["errors"], refused["cost_usd"]) == (1, 1, 0)
    assert rows[("2026-11-01", "-", "-")]["errors"] == 1


def test_month_filters_and_csv(logs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *logs, "--by", "month", "--tenant", "team-a/team-a", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["period"], r["requests"], r["tokens_out"], r["cost_usd"]) for r in rows] == [
        ("2026-10", "2", "40", "0.000026"),
        ("2026-11", "5", "100", "0.000052"),
    ]
    code, out, _ = run(capsys, *logs, "--since", "2026-11-01", "--until", "2026-11-02", "--format", "csv")
    assert {r["period"] for r in csv.DictReader(io.StringIO(out))} == {"2026-11-01"}
    code, out, _ = run(capsys, *logs, "--until", "2026-11-01", "--format", "csv")
    assert {r["period"] for r in csv.DictReader(io.StringIO(out))} == {"2026-10-31"}


def test_table_has_a_total_line(logs: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *logs)
    assert code == 0
    lines = out.splitlines()
    header = "period tenant model requests errors cached tokens_in tokens_out cost_usd"
    assert lines[0].split() == header.split()
    total = lines[-1].split()
    assert total[0] == "total" and total[1:4] == ["10", "2", "1"]  # requests, errors, cached
    assert total[-1] == "0.0000789"


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path / "missing.jsonl"))
    assert code == 2 and "missing.jsonl" in err
    (tmp_path / "a.jsonl").write_text("")
    code, _, err = run(capsys, str(tmp_path / "a.jsonl"), "--since", "yesterday")
    assert code == 2 and "yesterday" in err
