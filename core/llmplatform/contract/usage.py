"""The Redis usage-key scheme: which counter a request touches, and where it lives.

Why in the contract: the gateway's limiter writes these counters and the operator copies the
current ones into TenantQuota status; both must build the same key for the same window, so the
scheme is here once and neither side imports the other.

Keys: `llmp:{<tenant>}:<scope>:<metric><window>:<window id>`, where the braces keep one tenant's
keys in one Redis Cluster slot, scope is `t` (the tenant) or `u:<16 hex of the user's SHA-256>`
(end-user names stay out of Redis), metric is `req`, `tok` or `usd` (micro-USD, so every counter
is an integer) and the windows are fixed UTC windows: `m`inute, `h`our, `d`ay, calendar `mo`nth.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
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
