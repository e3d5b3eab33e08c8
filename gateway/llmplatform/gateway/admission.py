"""Admission: reserve a request's worst case against its limits, answer 429 with OpenAI's
x-ratelimit-* headers, and settle to what was used.

Why a room of its own: which limiter holds the counters (Redis, or this process when Redis is
unreachable and the failure mode is `local`), the 429 and its headers, and the settlement all
follow the same rules (limits.py); the server only calls `reserve`, `settle` and `usage`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from llmplatform.contract.usage import MICRO
from llmplatform.gateway import metrics as m
from llmplatform.gateway.accounting import own_count
from llmplatform.gateway.compiled import Tenant
from llmplatform.gateway.context import Ctx, Trace
from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.limits import Charge, Denial, LocalLimiter, RedisLimiter, RedisUnavailable, plan

log = logging.getLogger("llmplatform.gateway")

REDIS_FAILURE_MODES = ("local", "refuse")
SEEN_MAX = 10_000
"""Tenants and end users whose last Redis counters a worker keeps for the fallback (then it
forgets them all and starts again: a bound on memory, not a cache policy)."""
SUFFIX = {"req": "requests", "tok": "tokens"}
"""Counter metric -> the x-ratelimit-*-<suffix> it is reported as (cost has no header)."""
USAGE_FIELDS = {
    "requests_per_minute": "requestsThisMinute",
    "tokens_per_day": "tokensToday",
    "cost_per_month_usd": "costThisMonthUSD",
}
"""Limit field -> the key `GET /v1/llmplatform/usage` reports it under."""


def duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* format: `1s`, `6m0s`, `1h2m3s`."""
    s = max(0, math.ceil(seconds))
    h, rest = divmod(s, 3600)
    mins, secs = divmod(rest, 60)
    if h:
        return f"{h}h{mins}m{secs}s"
    if mins:
        return f"{mins}m{secs}s"
    return f"{secs}s"


def _headers_for(headers: dict[str, str], charge: Charge, remaining: int) -> None:
    """The three x-ratelimit-* headers of one counter (the one place they are written)."""
    suffix = SUFFIX[charge.metric]
    headers[f"x-ratelimit-limit-{suffix}"] = str(charge.limit)
    headers[f"x-ratelimit-remaining-{suffix}"] = str(max(0, remaining))
    headers[f"x-ratelimit-reset-{suffix}"] = duration(charge.reset_seconds)


def ratelimit_headers(charges: list[Charge], values: list[int]) -> dict[str, str]:
    """x-ratelimit-* for the tightest limited request counter and token counter (the first
    one on a tie), found in one pass over the request's counters."""
    tightest: dict[str, tuple[int, Charge]] = {}
    for c, v in zip(charges, values, strict=False):
        if c.limit >= 0 and c.metric != "usd":
            best = tightest.get(c.metric)
            if best is None or c.limit - v < best[0]:
                tightest[c.metric] = (c.limit - v, c)
    headers: dict[str, str] = {}
    for metric in ("req", "tok"):
        best = tightest.get(metric)
        if best is not None:
            _headers_for(headers, best[1], best[0])
    return headers


def _amount(metric: str, value: int) -> str:
    """A counter value as people read it: `3,900` tokens, `$1,500` or `$0.0012`."""
    if metric == "usd":
        return "$" + f"{value / MICRO:,.6f}".rstrip("0").rstrip(".")
    return f"{value:,}"


def refusal(denial: Denial, reserved: int) -> GatewayError:
    """The 429 for a denied reservation, with OpenAI's headers.

    Why the long message: a token or cost limit is mostly hit by reservations (each request
    reserves its prompt plus its whole possible output until it finishes), which surprises a
    caller who used a few tokens. So the message says how much of the counter in-flight
    requests hold vs what was used, what this request asked for, and that `max_tokens`
    reserves less. `reserved` counts this worker's reservations only; with several workers
    or replicas the others' count as used."""
    c = denial.charge
    headers = {"retry-after": str(denial.retry_after)}
    if c.metric != "usd":
        _headers_for(headers, c, c.limit - denial.current)
    what = "budget" if c.metric == "usd" else "rate limit"
    message = f"{c.scope} {what} {c.field} reached"
    if c.metric != "req":
        unit = "" if c.metric == "usd" else " tokens"
        of = f"of {_amount(c.metric, c.limit)}{unit}"
        asks = f"this request would reserve {_amount(c.metric, c.amount)}"
        if reserved > 0:
            used = _amount(c.metric, max(0, denial.current - reserved))
            message += (
                f": {_amount(c.metric, reserved)} {of} are reserved by in-flight requests "
                f"(used: {used}), {asks} more"
            )
        else:
            message += f": {_amount(c.metric, denial.current)} {of} used, {asks}"
        message += "; send max_tokens to reserve less"
    message += f"; retry after {denial.retry_after}s"
    return GatewayError(429, message, code="rate_limit_exceeded", headers=headers)


class Admission:
    """The limiters of one worker and the Redis health loop that picks between them."""

    def __init__(self, redis_url: str | None, failure_mode: str) -> None:
        self.failure_mode = failure_mode
        self.local = LocalLimiter()
        self.redis = RedisLimiter(redis_url) if redis_url else None
        self.redis_ok = self.redis is not None
        self.seen: dict[str, tuple[list[Charge], list[int]]] = {}
        self.refused: dict[str, tuple[Charge, int]] = {}
        """What Redis last told this worker per (tenant, user, month) (keyed by the plan's last
        key, the month's cost counter of its narrowest scope): every counter's value after the
        last admission (`seen`), the full counter's after the last refusal (`refused`). The
        local fallback starts from them, which bounds what an outage or a failover over-admits
        to the headroom left then (a dict write per request; no Redis work)."""
        self.inflight: dict[str, int] = {}
        """Counter key -> tokens or micro-USD reserved by this worker's requests still in
        flight, so a 429 can tell reservations from use (keys leave when settled)."""
        self._settling: set[asyncio.Future[None]] = set()
        """Settlements being written to Redis (the loop keeps only weak references to tasks)."""

    def state(self) -> str:
        if self.redis is None:
            return "local"
        return "redis" if self.redis_ok else f"redis unreachable ({self.failure_mode})"

    def refusing(self) -> bool:
        """Redis is down and the failure mode says to answer 503 (and fail /readyz)."""
        return self.redis is not None and not self.redis_ok and self.failure_mode == "refuse"

    async def start(self) -> asyncio.Task[None] | None:
        if self.redis is None:
            return None
        self.redis_ok = await self.redis.warm()
        m.REDIS_UP.set(1 if self.redis_ok else 0)
        return asyncio.create_task(self._redis_loop())

    async def _redis_loop(self) -> None:
        assert self.redis is not None
        while True:
            ok = await self.redis.ping()
            if ok != self.redis_ok:
                log.warning("redis %s", "reachable again" if ok else "unreachable")
            self.redis_ok = ok
            m.REDIS_UP.set(1 if ok else 0)
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self.redis is not None:
            try:  # what was used is written before the connection goes
                await asyncio.wait_for(self.settled(), 5.0)
            except TimeoutError:
                log.warning("settlements still unwritten at shutdown: %d", len(self._settling))
            await self.redis.close()

    async def _reserve(self, charges: list[Charge]) -> tuple[LocalLimiter | RedisLimiter, Any, list[int]]:
        if self.redis is not None and self.redis_ok:
            try:
                denial, values = await self.redis.reserve(charges)
                if len(self.seen) + len(self.refused) >= SEEN_MAX:
                    self.seen.clear()
                    self.refused.clear()
                if denial is None:
                    # answers of concurrent calls arrive in any order: keep the latest script
                    # run, the one that left the request counter (never settled down) highest
                    last = self.seen.get(charges[-1].key)
                    if last is None or last[0][0].key != charges[0].key or last[1][0] <= values[0]:
                        self.seen[charges[-1].key] = (charges, values)
                else:
                    had = self.refused.get(charges[-1].key)
                    if had is None or had[0].key != denial.charge.key or had[1] <= denial.current:
                        self.refused[charges[-1].key] = (denial.charge, denial.current)
                return self.redis, denial, values
            except RedisUnavailable as exc:
                log.warning(
                    "redis unreachable, limits follow redis failure mode %s: %s", self.failure_mode, exc
                )
                self.redis_ok = False
                m.REDIS_UP.set(0)
        if self.redis is not None:
            if self.failure_mode == "refuse":
                raise GatewayError(
                    503, "the shared rate-limit store is unreachable", code="limits_unavailable"
                )
            m.LIMITER_DEGRADED.inc()
            if (admitted := self.seen.get(charges[-1].key)) is not None:
                self.local.seed(*admitted)
            if (refused := self.refused.get(charges[-1].key)) is not None:
                self.local.seed([refused[0]], [refused[1]])
        denial, values = await self.local.reserve(charges)
        return self.local, denial, values

    async def reserve(
        self,
        tenant: Tenant,
        user: str | None,
        worst_tokens: int,
        worst_cost: float,
        extra: dict[str, str],
        trace: Trace | None = None,
    ) -> tuple[LocalLimiter | RedisLimiter, list[Charge]]:
        """Reserve the worst case or raise the 429; adds the x-ratelimit-* headers to `extra`.
        With `trace`, the decision is an `llmplatform.rate_limit` event on the request span."""
        charges = plan(tenant.id, tenant.limits, user, tenant.user_limits, worst_tokens, worst_cost)
        limiter, denial, values = await self._reserve(charges)
        if denial is not None:
            m.RATE_LIMITED.labels(tenant.id, denial.charge.scope, denial.charge.field).inc()
            if trace is not None and trace.recording:
                trace.event(
                    "llmplatform.rate_limit",
                    {
                        "llmplatform.decision": "denied",
                        "llmplatform.limiter": self.state(),
                        "llmplatform.limit.scope": denial.charge.scope,
                        "llmplatform.limit.field": denial.charge.field,
                        "llmplatform.retry_after_seconds": denial.retry_after,
                    },
                )
            raise refusal(denial, self.inflight.get(denial.charge.key, 0))
        if trace is not None and trace.recording:
            trace.event(
                "llmplatform.rate_limit",
                {
                    "llmplatform.decision": "admitted",
                    "llmplatform.limiter": self.state(),
                    "llmplatform.reserved_tokens": worst_tokens,
                },
            )
        for c in charges:
            if c.metric != "req" and c.limit >= 0:
                self.inflight[c.key] = self.inflight.get(c.key, 0) + c.amount
        extra.update(ratelimit_headers(charges, values))
        return limiter, charges

    async def settle(self, limiter: LocalLimiter | RedisLimiter, charges: list[Charge], ctx: Ctx) -> None:
        """Turn the reservation into what was used: believable upstream usage, else the
        gateway's own count (the prompt estimate and the output it relayed, so a client that
        leaves mid-stream pays for what it was sent). Never raises: a settlement that fails
        leaves the worst case reserved, which over-charges and never under-charges.

        The amounts are decided here, before the answer goes out (the audit record uses
        them); the write to Redis runs in the background, off the request's critical path.
        Until it lands the counters hold the reservation (the worst case, which only an upstream
        reporting more prompt tokens than the gateway's over-counting estimate can exceed), so
        settling late never lets a limit be passed in between."""
        for c in charges:  # the 429's "reserved by in-flight requests" figure
            if c.metric != "req" and c.limit >= 0:
                if (left := self.inflight.get(c.key, 0) - c.amount) > 0:
                    self.inflight[c.key] = left
                else:
                    self.inflight.pop(c.key, None)
        try:
            if ctx.served is not None and not ctx.usage_reported:
                ctx.tokens_in, ctx.tokens_out = own_count(ctx)
                ctx.cost = ctx.served.cost(ctx.tokens_in, ctx.tokens_out)
            used = {"req": 1, "tok": ctx.tokens_in + ctx.tokens_out, "usd": math.ceil(ctx.cost * MICRO)}
            deltas = [used[c.metric] - c.amount for c in charges]
            if limiter is self.local:
                await self.local.settle(charges, deltas)
                return
        except Exception:
            log.exception(
                "settlement failed; the worst case stays reserved", extra={"request_id": ctx.request_id}
            )
            return
        task = asyncio.ensure_future(self._write_settlement(limiter, charges, deltas, ctx.request_id))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _write_settlement(
        self, limiter: LocalLimiter | RedisLimiter, charges: list[Charge], deltas: list[int], request_id: str
    ) -> None:
        try:
            await limiter.settle(charges, deltas)
        except RedisUnavailable as exc:
            log.warning("could not settle usage in redis: %s", exc, extra={"request_id": request_id})
        except Exception:
            log.exception(
                "settlement failed; the worst case stays reserved", extra={"request_id": request_id}
            )

    async def settled(self) -> None:
        """Wait for this worker's settlements in flight (reads of its own usage see them)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def usage(self, tenant: Tenant) -> dict[str, Any]:
        """The tenant's counters (requests this minute, tokens today, cost this month)."""
        await self.settled()
        charges = plan(tenant.id, tenant.limits, None, None, 0, 0.0)
        picked = [c for c in charges if c.field in USAGE_FIELDS]
        limiter = self.redis if self.redis is not None and self.redis_ok else self.local
        try:
            values = await limiter.read([c.key for c in picked])
        except RedisUnavailable:
            values = await self.local.read([c.key for c in picked])
        body: dict[str, Any] = {"tenant": tenant.id, "limiter": self.state()}
        for c, v in zip(picked, values, strict=True):
            body[USAGE_FIELDS[c.field]] = v / MICRO if c.metric == "usd" else v
        return body
