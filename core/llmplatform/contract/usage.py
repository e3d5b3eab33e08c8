"""The Redis usage-key scheme: which counter a request touches, and where it lives.

Why in the contract: the gateway's limiter writes these counters and the operator copies the
current ones into TenantQuota status; both must build the same key for the same window, so the
scheme is here once and neither side imports the other.

Keys: `llmp:{<tenant>}:<scope>:<metric><window>:<window id>`, where the braces keep one tenant's
keys in one Redis Cluster slot, scope is `t` (the tenant) or `u:<16 hex of the user's SHA-256>`
(end-user names stay out of Redis), metric is `req`, `tok` or `usd` (micro-USD, so every counter
is an integer) and the windows are fixed UTC windows: `m`inute, `h`our, `d`ay, calendar `mo`nth.

Checkpoints: TenantQuota.status.usage (with its `day`) is the durable copy of tokens today and
cost this month; `llmp:{<tenant>}:ckpt` marks a Redis that holds the tenant's counters, so its
absence tells the operator to restore them from the checkpoint (operator/usage.py).
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import math
import time

MINUTE, HOUR, DAY = 60, 3600, 86400
MICRO = 1_000_000
"""Cost counters count micro-USD."""


def window_id(window: str, now: float) -> tuple[str, float]:
    """The window's id and the seconds until it ends."""
    if window == "m":
        return str(int(now // MINUTE)), MINUTE - now % MINUTE
    if window == "h":
        return str(int(now // HOUR)), HOUR - now % HOUR
    if window == "d":
        return str(int(now // DAY)), DAY - now % DAY
    month, next_month = _month(int(now // HOUR))
    return month, max(1.0, next_month - now)


@functools.lru_cache(maxsize=4)
def _month(hour: int) -> tuple[str, int]:
    """The calendar month (UTC) holding this hour, and when the next one starts; cached per
    hour since months start on an hour boundary."""
    t = time.gmtime(hour * HOUR)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return f"{t.tm_year:04d}{t.tm_mon:02d}", calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))


def scope_key(tenant_id: str, user: str | None) -> tuple[str, str]:
    """The scope's name (`tenant` or `user`) and the key prefix of its counters."""
    if user is None:
        return "tenant", f"llmp:{{{tenant_id}}}:t"
    digest = hashlib.sha256(user.encode()).hexdigest()[:16]  # end-user names stay out of Redis
    return "user", f"llmp:{{{tenant_id}}}:u:{digest}"


def counter_stem(prefix: str, metric: str, window: str) -> str:
    """A counter's key without its window id."""
    return f"{prefix}:{metric}{window}:"


USAGE_FIELDS = (
    ("requestsThisMinute", "req", "m"),
    ("tokensToday", "tok", "d"),
    ("costThisMonthUSD", "usd", "mo"),
)
"""The counters TenantQuota.status.usage reports: (status field, metric, window)."""


def tenant_usage_keys(tenant_id: str, now: float) -> list[tuple[str, str, bool]]:
    """(status field, Redis key, is micro-USD) of a tenant's current usage counters: the keys
    the gateway's limiter writes, so the operator can copy them into TenantQuota status."""
    _, prefix = scope_key(tenant_id, None)
    return [
        (status_field, counter_stem(prefix, metric, window) + window_id(window, now)[0], metric == "usd")
        for status_field, metric, window in USAGE_FIELDS
    ]


CHECKPOINTED = {"tokensToday": "d", "costThisMonthUSD": "mo"}
"""Status fields restored into Redis from TenantQuota.status.usage after Redis lost them (the
minute's requests are not: the minute is over before a checkpoint could matter), by window."""


def usage_day(now: float) -> str:
    """TenantQuota.status.usage.day: the UTC day (YYYY-MM-DD) a checkpoint was taken in, which
    names the day tokensToday counts and the month costThisMonthUSD counts."""
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def checkpoint_key(tenant_id: str) -> str:
    """The tenant's restore marker: written with its counters' restore, never expiring, in the
    tenant's slot. A Redis that lacks it has lost (or never had) the tenant's counters."""
    return f"llmp:{{{tenant_id}}}:ckpt"


def restorable(tenant_id: str, usage: dict[str, object], now: float) -> list[tuple[str, int, int]]:
    """(Redis key, counter value, seconds the key may live) a checkpoint (a TenantQuota's
    status.usage) holds for the windows current at `now`: nothing from an earlier day or month,
    nothing from a checkpoint without its `day`."""
    day = usage.get("day")
    if not isinstance(day, str):
        return []
    try:
        taken = calendar.timegm(time.strptime(day, "%Y-%m-%d")) + DAY / 2
    except ValueError:
        return []
    _, prefix = scope_key(tenant_id, None)
    out = []
    for status_field, metric, window in USAGE_FIELDS:
        if status_field not in CHECKPOINTED:
            continue
        value = usage.get(status_field)
        current, seconds = window_id(window, now)
        if not isinstance(value, int | float) or value <= 0 or window_id(window, taken)[0] != current:
            continue
        count = round(value * MICRO) if metric == "usd" else int(value)
        out.append((counter_stem(prefix, metric, window) + current, count, math.ceil(seconds) + 1))
    return out
