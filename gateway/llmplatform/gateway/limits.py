"""Rate limits and budgets: reserve the worst case, then settle to what was used.

Semantics (also in docs/gateway.md):
- Counters are fixed windows in UTC: requests per minute and hour, tokens per minute and day,
  cost per calendar month (in micro-USD, so every counter is an integer). Each tenant has one
  set; each (tenant, user) has another when the tenant has `userLimits`.
- Admission is all-or-nothing: a request is admitted only if, for every limited counter,
  `current + worst case <= limit`; then every counter is incremented at once. The worst case
  is 1 request, prompt estimate + the request's worst-case output (worstcase.py: max tokens
  per choice times the choices billed), and that many tokens at the dearest candidate's
  prices. Because admission and increment are one atomic step (one event-loop turn in
  process, one Lua script in Redis), concurrent requests can never together pass a limit.
- Settlement adds `actual - reserved` to the same window counters the reservation used:
  actual is the upstream's usage when it is believable (accounting.valid_usage), else the
  gateway's own count of what it relayed. A request that failed everywhere keeps
  its request count and gives its tokens and cost back.
- Redis keys: the scheme in `llmplatform.contract.usage` (shared with the operator, which
  reads the counters into TenantQuota status); they expire after their window.
  They are the usage record that the operator or `GET /v1/llmplatform/usage` reads.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmplatform.contract import redisurl
from llmplatform.contract.config import Limits
from llmplatform.contract.usage import MICRO, counter_stem, scope_key, window_id

log = logging.getLogger("llmplatform.gateway.limits")


# (config field, metric, window) for each limit.
LIMIT_FIELDS = (
    ("requests_per_minute", "req", "m"),
    ("requests_per_hour", "req", "h"),
    ("tokens_per_minute", "tok", "m"),
    ("tokens_per_day", "tok", "d"),
    ("cost_per_month_usd", "usd", "mo"),
)


@dataclass(slots=True)
class Charge:
    """One counter touched by a request (ten per request with user limits: slots make them
    cheaper to build and read)."""

    key: str
    field: str
    scope: str
    metric: str
    amount: int
    limit: int
    """-1 for unlimited (the counter is still kept, for usage reporting)."""
    reset_seconds: float


@dataclass
class Denial:
    charge: Charge
    current: int

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.charge.reset_seconds))


def _rows(limits: Limits) -> tuple[tuple[str, str, str, int], ...]:
    """(field, metric, window, limit) per counter; limit -1 means unlimited."""
    rows = []
    for field, metric, window in LIMIT_FIELDS:
        value = getattr(limits, field)
        limit = -1 if value is None else (math.floor(value * MICRO) if metric == "usd" else int(value))
        rows.append((field, metric, window, limit))
    return tuple(rows)


@functools.lru_cache(maxsize=65536)
def _scope_rows(
    tenant_id: str, user: str | None, limits: Limits
) -> tuple[str, tuple[tuple[str, str, str, int, str], ...]]:
    """A scope's name and its (field, metric, window, limit, key without the window id) rows:
    everything about a request's counters except the time, cached, since a tenant's Limits
    object lives as long as its config (one lookup per scope per request instead of a key
    built per counter)."""
    scope, prefix = scope_key(tenant_id, user)
    rows = tuple(
        (field, metric, window, limit, counter_stem(prefix, metric, window))
        for field, metric, window, limit in _rows(limits)
    )
    return scope, rows


def plan(
    tenant_id: str,
    limits: Limits,
    user: str | None,
    user_limits: Limits | None,
    tokens: int,
    cost_usd: float,
    now: float | None = None,
) -> list[Charge]:
    """The counters a request touches, with its worst-case amounts."""
    now = time.time() if now is None else now
    windows = {w: window_id(w, now) for w in ("m", "h", "d", "mo")}
    scopes: list[tuple[str | None, Limits]] = [(None, limits)]
    if user is not None and user_limits is not None:
        scopes.append((user, user_limits))
    amounts = {"req": 1, "tok": tokens, "usd": math.ceil(cost_usd * MICRO)}
    charges: list[Charge] = []
    for scope_user, scope_limits in scopes:
        scope, rows = _scope_rows(tenant_id, scope_user, scope_limits)
        for field, metric, window, limit, stem in rows:
            wid, reset = windows[window]
            charges.append(Charge(stem + wid, field, scope, metric, amounts[metric], limit, reset))
    return charges


class LocalLimiter:
    """In-process counters: exact for one process; with several workers or replicas each one
    enforces the full limit on its own (use Redis for a shared limit)."""

    name = "local"

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._calls = 0

    def _get(self, key: str, now: float) -> int:
        entry = self._counts.get(key)
        if entry is None or entry[1] <= now:
            return 0
        return entry[0]

    async def reserve(self, charges: Sequence[Charge]) -> tuple[Denial | None, list[int]]:
        now = time.monotonic()
        # One read per counter: the keys of a plan are distinct and nothing runs in between.
        currents = [self._get(c.key, now) for c in charges]
        for c, current in zip(charges, currents, strict=True):
            if c.limit >= 0 and current + c.amount > c.limit:
                return Denial(c, current), []
        values = []
        for c, current in zip(charges, currents, strict=True):
            value = current + c.amount
            self._counts[c.key] = (value, now + c.reset_seconds + 1)
            values.append(value)
        self._calls += 1
        if self._calls % 10_000 == 0:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        return None, values

    def seed(self, charges: Sequence[Charge], values: Sequence[int]) -> None:
        """Raise counters to values the shared store reported for the same keys (never lower
        one): when Redis becomes unreachable this process goes on from the shared count it last
        saw instead of from zero, so the fallback overshoots by at most the headroom left then."""
        now = time.monotonic()
        for c, value in zip(charges, values, strict=True):
            if self._get(c.key, now) < value:
                self._counts[c.key] = (value, now + c.reset_seconds + 1)

    async def settle(self, charges: Sequence[Charge], deltas: Sequence[int]) -> None:
        now = time.monotonic()
        for c, delta in zip(charges, deltas, strict=True):
            if delta and c.key in self._counts:
                value, expires = self._counts[c.key]
                if expires > now:
                    self._counts[c.key] = (value + delta, expires)

    async def read(self, keys: Sequence[str]) -> list[int]:
        now = time.monotonic()
        return [self._get(k, now) for k in keys]


RESERVE_LUA = """
local n = #KEYS
for i = 1, n do
  local limit = tonumber(ARGV[3 * i - 1])
  if limit >= 0 then
    local current = tonumber(redis.call('GET', KEYS[i]) or '0')
    if current + tonumber(ARGV[3 * i - 2]) > limit then
      return {i, current}
    end
  end
end
local values = {}
for i = 1, n do
  values[i] = redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2])
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[3 * i])
  end
end
return {0, values}
"""

SETTLE_LUA = """
for i = 1, #KEYS do
  if ARGV[i] ~= '0' and redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i])
  end
end
return 0
"""


MAX_CONNECTIONS = 8
"""Connections per worker to a single Redis (the limiter's, and the cache's own): a script call
takes well under a millisecond, so 8 in flight keep a worker busy, and a burst waits for one of
them rather than opening (and TLS-handshaking) one connection per request."""


class RedisUnavailable(Exception):
    pass


_Call = tuple[str, list[str], list[Any], "asyncio.Future[Any]"]
"""One queued script call: script name, keys, arguments, and where its answer goes."""


class RedisLimiter:
    """Counters shared by every replica through atomic Lua scripts on one Redis: a single server,
    the primary Sentinel reports, or Redis Cluster (a request's keys share the tenant's hash tag,
    so each script call runs on one node; `llmplatform.contract.redisurl` reads the URL).

    Why batched: every request needs one script call to reserve and one to settle, and with
    many requests in flight the per-command cost of the client (a write, a read, a parser pass
    and a wake-up each) was most of what the Redis path added. Calls made in the same turn of
    the event loop are sent as one pipeline (one write, one read; a Cluster pipeline splits it
    by node); each script still runs atomically on its own, in order, so admission is exactly
    what one call per request gives. Scripts are called by SHA (loaded on first use, and again
    after a Redis restart empties its script cache: a NOSCRIPT answer means the script did not
    run, so it is safe to retry)."""

    name = "redis"

    def __init__(self, url: str, timeout: float = 0.5, connect_timeout: float = 2.0) -> None:
        import redis.asyncio as aioredis

        # Opening a connection (a TLS handshake on a busy machine) can take longer than a
        # command: a 0.5 s connect timeout put whole bursts on the per-process fallback while
        # Redis was fine. A Redis that is really down refuses connections at once, and after
        # one failure the health probe decides.
        self._redis: Any = redisurl.connect(aioredis, url, timeout, connect_timeout, MAX_CONNECTIONS)
        self._shas = {name: _sha1(body) for name, body in (("reserve", RESERVE_LUA), ("settle", SETTLE_LUA))}
        self._queue: list[_Call] = []

    async def _call(self, coro: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await coro
        except (TimeoutError, RedisError, OSError) as exc:  # also errors Redis answers (OOM...)
            raise RedisUnavailable(str(exc)) from exc

    async def warm(self) -> bool:
        """Open the pool's connections now (concurrent PINGs), before traffic: with TLS each new
        connection costs a TLS context built on the event loop, and a cold pool under the first
        burst blocked the loop long enough for commands in flight to time out. Whether Redis
        answered."""
        answers = await asyncio.gather(*(self.ping() for _ in range(MAX_CONNECTIONS)))
        return all(answers)

    async def ping(self) -> bool:
        try:
            await self._call(self._redis.ping())
            return True
        except RedisUnavailable:
            return False

    def _script(self, name: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Queue one script call for this loop turn's pipeline; its answer arrives in the future."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._queue:
            asyncio.get_running_loop().call_soon(self._flush_soon)
        self._queue.append((name, keys, args, fut))
        return fut

    def _flush_soon(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.ensure_future(self._flush(batch))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _flush(self, batch: list[_Call]) -> None:
        from redis.exceptions import NoScriptError, RedisError

        try:
            answers = await self._pipeline(batch)
            retry = [i for i, a in enumerate(answers) if isinstance(a, NoScriptError)]
            if retry:  # Redis restarted: load the scripts again, rerun what did not run
                for body in (RESERVE_LUA, SETTLE_LUA):
                    await self._redis.script_load(body)
                again = await self._pipeline([batch[i] for i in retry])
                for i, a in zip(retry, again, strict=True):
                    answers[i] = a
        except (TimeoutError, RedisError, OSError) as exc:
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(RedisUnavailable(str(exc)))
            return
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(RedisUnavailable(f"redis call abandoned: {exc!r}"))
            raise
        for (*_, fut), answer in zip(batch, answers, strict=True):
            if fut.done():
                continue
            if isinstance(answer, Exception):  # an error Redis answered for this call (OOM...)
                fut.set_exception(RedisUnavailable(str(answer)))
            else:
                fut.set_result(answer)

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for name, keys, args, _ in batch:
            # execute_command: redis-py's Cluster pipeline refuses its evalsha() helper
            pipe.execute_command("EVALSHA", self._shas[name], len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def reserve(self, charges: Sequence[Charge]) -> tuple[Denial | None, list[int]]:
        args: list[int] = []
        for c in charges:
            args += [c.amount, c.limit, math.ceil(c.reset_seconds) + 1]
        answer = self._script("reserve", [c.key for c in charges], args)
        try:
            index, values = await asyncio.shield(answer)
        except asyncio.CancelledError:
            # The caller left (a client disconnect) while the call was queued or in flight: the
            # script may still run and admit. Give back what it reserved, once it answers, so a
            # request nobody waits for does not hold the tenant's tokens and cost.
            answer.add_done_callback(lambda f: self._undo(f, charges))
            raise
        if index:
            return Denial(charges[index - 1], int(values)), []
        return None, [int(v) for v in values]

    def _undo(self, answer: asyncio.Future[Any], charges: Sequence[Charge]) -> None:
        if answer.cancelled() or answer.exception() is not None or answer.result()[0]:
            return  # never ran, or refused: nothing was reserved
        deltas = [0 if c.metric == "req" else -c.amount for c in charges]  # the request still counts
        undone = self._script("settle", [c.key for c in charges], [str(d) for d in deltas])
        undone.add_done_callback(_log_failure)

    async def settle(self, charges: Sequence[Charge], deltas: Sequence[int]) -> None:
        await self._script("settle", [c.key for c in charges], [str(d) for d in deltas])

    async def read(self, keys: Sequence[str]) -> list[int]:
        values = await self._call(self._redis.mget(list(keys)))
        return [int(v) if v is not None else 0 for v in values]

    async def close(self) -> None:
        await self._redis.aclose()


_BACKGROUND: set[asyncio.Future[Any]] = set()
"""Pipelines in flight (the loop keeps only weak references to tasks)."""


def _log_failure(f: asyncio.Future[Any]) -> None:
    if not f.cancelled() and (exc := f.exception()) is not None:
        log.warning("could not give back an abandoned reservation: %s", exc)


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()
