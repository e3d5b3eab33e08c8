"""The Redis limiter's batching against a real redis-server: calls made in one loop turn go out
as one pipeline, and that must change nothing a tenant can observe.

- exactness: a burst of reservations in one turn admits exactly the limit;
- a caller that leaves while its reservation is queued gets its tokens and cost back (the
  request still counts), so a disconnect never strands a worst-case reservation;
- a Redis restart empties its script cache: the NOSCRIPT answer is retried after loading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmplatform.contract.config import Limits
from llmplatform.gateway.limits import RedisLimiter, plan
from llmplatform_testing import gateway as h


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = h.start_redis(tmp_path_factory.mktemp("redis-limiter"))
    try:
        yield url
    finally:
        proc.stop()


def _charges(tenant: str, rpm: int, tokens: int = 100, cost: float = 0.5) -> list:  # type: ignore[type-arg]
    limits = Limits(requests_per_minute=rpm, tokens_per_day=10**9, cost_per_month_usd=10**6)
    return plan(tenant, limits, None, None, tokens, cost)


async def _counters(limiter: RedisLimiter, charges: list) -> dict[str, int]:  # type: ignore[type-arg]
    values = await limiter.read([c.key for c in charges])
    return {c.field: v for c, v in zip(charges, values, strict=True)}


def test_a_burst_in_one_loop_turn_admits_exactly_the_limit(redis_url: str) -> None:
    async def run() -> list[bool]:
        limiter = RedisLimiter(redis_url)
        try:
            calls = [limiter.reserve(_charges("burst", rpm=15)) for _ in range(60)]
            results = await asyncio.gather(*calls)
            assert (await _counters(limiter, _charges("burst", 15)))["requests_per_minute"] == 15
            return [denial is None for denial, _ in results]
        finally:
            await limiter.close()

    admitted = asyncio.run(run())
    assert admitted.count(True) == 15 and admitted.count(False) == 45


def test_a_caller_that_leaves_while_queued_gets_its_reservation_back(redis_url: str) -> None:
    async def run() -> dict[str, int]:
        limiter = RedisLimiter(redis_url)
        try:
            charges = _charges("leaver", rpm=100, tokens=1000, cost=2.0)
            task = asyncio.create_task(limiter.reserve(charges))
            await asyncio.sleep(0)  # the call is queued for this turn's pipeline
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(100):  # the script still runs; then the give-back
                counters = await _counters(limiter, charges)
                if counters["requests_per_minute"] == 1 and counters["tokens_per_day"] == 0:
                    break
                await asyncio.sleep(0.02)
            return await _counters(limiter, charges)
        finally:
            await limiter.close()

    counters = asyncio.run(run())
    assert counters["requests_per_minute"] == 1, counters  # the request still counts
    assert counters["tokens_per_day"] == 0 and counters["cost_per_month_usd"] == 0, counters


def test_an_emptied_script_cache_is_reloaded(redis_url: str, tmp_path: Path) -> None:
    async def run() -> None:
        limiter = RedisLimiter(redis_url)
        try:
            first, _ = await limiter.reserve(_charges("flush", rpm=10))
            assert first is None
            await limiter._redis.script_flush()  # what a restart without persistence does
            again, values = await limiter.reserve(_charges("flush", rpm=10))
            assert again is None and values[0] == 2
        finally:
            await limiter.close()

    asyncio.run(run())
