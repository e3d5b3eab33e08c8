"""`llmplatform usage report`: per-tenant, per-model, per-day (or month) totals from audit logs.

Why from the audit log: it is the durable record of every request (one line each, hash-chained,
kept and rotated on disk), whereas the Redis counters behind `kubectl get tq` and
`GET /v1/llmplatform/usage` only hold the current window. So chargeback reads the audit files:
any number of them, rotated ones (`FILE.1`, ...) and per-worker ones (`FILE.w<i>`) included, in
any order. A record is counted once even when the same file is passed twice (records are keyed
by their chain id and sequence number).

What it does not do: verify the chains (that is `llmplatform audit verify`); it reads `request`
records and skips `start`/`close` records and torn or unparseable lines (counted on stderr).
Periods are UTC, taken from each record's `time` (when the request started). Every request is
counted, refusals (4xx, 5xx) included, with the tokens and cost the gateway recorded for it
(zero for a refusal and for a response-cache hit).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

PERIOD_CHARS = {"day": 10, "month": 7}
"""`--by` -> how many characters of the RFC 3339 time name the period (2026-11-29 / 2026-11)."""


@dataclass
class Row:
    period: str
    tenant: str
    model: str
    requests: int = 0
    errors: int = 0
    """Requests answered with a status >= 400 (refused or failed)."""
    cached: int = 0
    """Requests answered from the response cache."""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)


COLUMNS = tuple(f.name for f in fields(Row))
"""The report's columns, in CSV and table order: a Row's fields."""


@dataclass
class Report:
    rows: list[Row]
    skipped_lines: int
    """Lines that were not a whole JSON record (a torn last line after a crash, say)."""
    other_records: int
    """start/close records, not requests."""


def _bound(text: str | None) -> str | None:
    """A --since/--until value as a comparable RFC 3339 prefix (a date or a full time)."""
    if text is None:
        return None
    if len(text) < 7 or not text[:4].isdigit():
        raise ValueError(f"expected a date (YYYY-MM-DD or YYYY-MM) or an RFC 3339 time, got {text!r}")
    return text.replace("+00:00", "Z")


def report(
    lines_by_file: Iterable[Iterable[str]],
    *,
    by: str = "day",
    tenant: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Report:
    """Totals per (period, tenant, model). `since` is inclusive, `until` exclusive; both compare
    with the record's time as text, so `2026-11` or `2026-11-29` or a full time all work."""
    width = PERIOD_CHARS[by]
    lo, hi = _bound(since), _bound(until)
    rows: dict[tuple[str, str, str], Row] = {}
    seen: set[tuple[str, int]] = set()
    skipped = other = 0
    for lines in lines_by_file:
        for line in lines:
            if not line.strip():
                continue
            try:
                record: dict[str, Any] = json.loads(line)
                kind, when = record["kind"], str(record["time"])
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            if kind != "request":
                other += 1
                continue
            ident = (str(record.get("chain")), int(record.get("seq") or 0))
            if ident in seen:
                continue
            seen.add(ident)
            who = record.get("tenant") or "-"
            if (tenant is not None and who != tenant) or (lo and when < lo) or (hi and when >= hi):
                continue
            key = (when[:width], who, record.get("model") or "-")
            row = rows.get(key)
            if row is None:
                row = rows[key] = Row(*key)
            row.requests += 1
            row.errors += int(record.get("status") or 0) >= 400
            row.cached += record.get("cache") == "hit"
            row.tokens_in += int(record.get("tokens_in") or 0)
            row.tokens_out += int(record.get("tokens_out") or 0)
            row.cost_usd += Decimal(str(record.get("cost_usd") or 0))
    return Report([rows[k] for k in sorted(rows)], skipped, other)


def _cells(row: Row) -> dict[str, Any]:
    cells = asdict(row)
    cells["cost_usd"] = f"{row.cost_usd.normalize():f}" if row.cost_usd else "0"
    return cells


def render(rep: Report, fmt: str) -> str:
    """The report as `table` (aligned, with a total line), `csv` or `json` (a list of rows)."""
    if fmt == "json":
        return json.dumps([{**_cells(r), "cost_usd": float(r.cost_usd)} for r in rep.rows], indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_cells(r) for r in rep.rows)
        return out.getvalue()
    table = [list(COLUMNS)] + [[str(_cells(r)[c]) for c in COLUMNS] for r in rep.rows]
    total = Row("total", "", "")
    for r in rep.rows:
        for name in ("requests", "errors", "cached", "tokens_in", "tokens_out", "cost_usd"):
            setattr(total, name, getattr(total, name) + getattr(r, name))
    table.append([str(_cells(total)[c]) for c in COLUMNS])
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    text = [
        "  ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in table
    ]
    return "\n".join(line.rstrip() for line in text) + "\n"
