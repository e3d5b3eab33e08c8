"""Limits and budgets through the HTTP surface: in process, and shared by two gateway
processes through a real Redis.

Windows are calendar minutes, so each test that counts requests first waits out the last
seconds of a minute rather than straddle two windows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
KEYS = {
    "rpm": "llmp-test-rpm",
    "burst": "llmp-test-burst",
    "tokens": "llmp-test-tokens",
    "budget": "llmp-test-budget",
    "users": "llmp-test-users",
    "shared": "llmp-test-shared",
    "reserve": "llmp-test-reserve",
}


def avoid_minute_edge(margin: float = 8.0) -> None:
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def tenants() -> list[dict[str, Any]]:
    slow_policy = h.policy(
        {"standard": ["alpha"]},
        default=False,
        timeouts={"connectSeconds": 5, "requestSeconds": 60, "streamIdleSeconds": 60},
    )
    slow_policy["metadata"]["name"] = "patient"  # waits for a slow upstream (reservation test)
    docs = [
        h.model("alpha", "URL"),
        h.model(
            "pricey",
            "URL",
            tier="premium",
            pricing={"inputPerMillionTokens": 10000, "outputPerMillionTokens": 10000},
        ),
        h.policy({"standard": ["alpha"], "premium": ["pricey"]}),
        *h.tenant("rpm", {"k": KEYS["rpm"]}, ["standard"], limits={"requestsPerMinute": 5}),
        *h.tenant("burst", {"k": KEYS["burst"]}, ["standard"], limits={"requestsPerMinute": 20}),
        *h.tenant("tokens", {"k": KEYS["tokens"]}, ["standard"], limits={"tokensPerMinute": 150}),
        *h.tenant("budget", {"k": KEYS["budget"]}, ["premium"], limits={"costPerMonthUSD": 1}),
        *h.tenant(
            "users",
            {"k": KEYS["users"]},
            ["standard"],
            limits={"requestsPerMinute": 100},
            userLimits={"requestsPerMinute": 2},
        ),
        *h.tenant("shared", {"k": KEYS["shared"]}, ["standard"], limits={"requestsPerMinute": 15}),
        slow_policy,
        *h.tenant(
            "reserve",
            {"k": KEYS["reserve"]},
            ["standard"],
            limits={"tokensPerMinute": 12000},
            routingPolicy={"name": "patient", "namespace": h.PLATFORM},
        ),
    ]
    for doc in docs:  # a service key fronting end users: userLimits key on the request's `user`
        if doc["kind"] == "TenantQuota" and doc["metadata"]["name"] == "users":
            doc["spec"]["apiKeys"][0]["trustClientUser"] = True
    return docs


def manifests(directory: Path, upstream: str) -> Path:
    docs = tenants()
    for doc in docs:
        if doc["kind"] == "LLMModel":
            doc["spec"]["endpoint"]["url"] = upstream + "/v1"
    return h.write_manifests(directory, docs)


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("upstream")
    gateway_world.serve(["--manifests", str(manifests(gateway_world.tmp / "m", url))])
    return gateway_world


def client(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def usage(base: str, key: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(
        base + "/v1/llmplatform/usage", headers={"Authorization": f"Bearer {key}"}
    ).json()
    return body


async def burst(bases: list[str], key: str, n: int) -> list[int]:
    """n concurrent chat requests spread over the gateways; their status codes."""
    async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_connections=n)) as c:

        async def one(i: int) -> int:
            r = await c.post(
                bases[i % len(bases)] + "/v1/chat/completions",
                json={"model": "auto", "messages": MESSAGES, "max_tokens": 2},
                headers={"Authorization": f"Bearer {key}"},
            )
            return r.status_code

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def test_requests_per_minute_with_headers_and_retry_after(world: dict[str, Any]) -> None:
    avoid_minute_edge()
    c = client(world["base"], KEYS["rpm"])
    remaining = []
    for _ in range(5):
        raw = c.chat.completions.with_raw_response.create(model="auto", messages=MESSAGES)
        assert raw.headers["x-ratelimit-limit-requests"] == "5"
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [4, 3, 2, 1, 0]
    with pytest.raises(openai.RateLimitError) as exc:
        c.chat.completions.create(model="auto", messages=MESSAGES)
    assert exc.value.code == "rate_limit_exceeded"
    assert 1 <= int(exc.value.response.headers["retry-after"]) <= 60
    assert exc.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert (
        h.metric(
            world["base"], "llmplatform_rate_limited_total", tenant="rpm/rpm", limit="requests_per_minute"
        )
        == 1
    )


def test_concurrent_burst_admits_exactly_the_limit(world: dict[str, Any]) -> None:
    avoid_minute_edge()
    codes = asyncio.run(burst([world["base"]], KEYS["burst"], 50))
    assert codes.count(200) == 20
    assert codes.count(429) == 30


def test_tokens_reserved_at_worst_case_then_settled_to_usage(world: dict[str, Any]) -> None:
    avoid_minute_edge()
    c = client(world["base"], KEYS["tokens"])
    # worst case: ~10 prompt tokens + 100 = 110 <= 150: admitted; the mock reports ~19 used.
    first = c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=100)
    assert first.usage is not None
    used = first.usage.total_tokens
    # a second 110-token worst case fits only because the first was settled down to its usage
    second = c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=100)
    assert second.usage is not None
    used += second.usage.total_tokens
    assert usage(world["base"], KEYS["tokens"])["tokensToday"] == used
    with pytest.raises(openai.RateLimitError) as exc:  # worst case ~150 on top of `used`
        c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=140)
    assert "tokens_per_minute" in exc.value.message


def test_a_429_caused_by_reservations_says_so_and_what_to_do(world: dict[str, Any]) -> None:
    """Without max_tokens a request reserves what is left of alpha's 8192-token context until it
    finishes; a second concurrent one does not fit 12,000 tokens per minute, and the 429 names
    the reservation, the little used, and max_tokens as the way out."""
    avoid_minute_edge(25)
    c = client(world["base"], KEYS["reserve"])
    h.mock_config(world["upstream"], latency_ms=8000)
    try:

        async def slow_then_second() -> tuple[int, str]:
            async with httpx.AsyncClient(timeout=30) as ac:
                slow = asyncio.ensure_future(
                    ac.post(
                        world["base"] + "/v1/chat/completions",
                        json={"model": "auto", "messages": MESSAGES},
                        headers={"Authorization": f"Bearer {KEYS['reserve']}"},
                    )
                )
                # once the upstream has the slow one, its reservation is held for 8 s
                deadline = time.monotonic() + 30
                while h.mock_stats(world["upstream"])["requests"] == 0:
                    assert time.monotonic() < deadline, "the slow request never reached the upstream"
                    await asyncio.sleep(0.05)
                try:
                    await asyncio.to_thread(c.chat.completions.create, model="auto", messages=MESSAGES)
                except openai.RateLimitError as exc:
                    assert isinstance(exc.body, dict)
                    return (await slow).status_code, str(exc.body["message"])
                raise AssertionError("the second request should not fit")

        status, message = asyncio.run(slow_then_second())
    finally:
        h.mock_config(world["upstream"], latency_ms=0)
    assert status == 200
    assert "tenant rate limit tokens_per_minute reached: " in message
    assert "of 12,000 tokens are reserved by in-flight requests (used: 0)" in message
    assert "send max_tokens to reserve less; retry after" in message
    reserved = int(message.split(": ", 2)[1].split(" of ")[0].replace(",", ""))
    assert 8000 < reserved <= 8192  # the context window minus the prompt estimate
    # with max_tokens the same request fits, and nothing is left reserved
    ok = c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=50)
    assert ok.usage is not None
    assert usage(world["base"], KEYS["reserve"])["tokensToday"] < 200


def test_monthly_budget_refuses_a_worst_case_that_would_overshoot(world: dict[str, Any]) -> None:
    c = client(world["base"], KEYS["budget"])
    # $0.01 per token: 200 output tokens alone would cost $2 of the $1 budget
    with pytest.raises(openai.RateLimitError) as exc:
        c.chat.completions.create(model="pricey", messages=MESSAGES, max_tokens=200)
    assert "cost_per_month_usd" in exc.value.message
    ok = c.chat.completions.create(model="pricey", messages=MESSAGES, max_tokens=10)
    assert ok.usage is not None
    spent = usage(world["base"], KEYS["budget"])["costThisMonthUSD"]
    assert spent == pytest.approx(ok.usage.total_tokens * 0.01)


def test_user_limits_apply_per_end_user(world: dict[str, Any]) -> None:
    avoid_minute_edge()
    c = client(world["base"], KEYS["users"])
    for _ in range(2):
        c.chat.completions.create(model="auto", messages=MESSAGES, user="u1")
    with pytest.raises(openai.RateLimitError) as exc:
        c.chat.completions.create(model="auto", messages=MESSAGES, user="u1")
    assert "user rate limit" in exc.value.message
    c.chat.completions.create(model="auto", messages=MESSAGES, user="u2")


@pytest.fixture(scope="module")
def redis_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[h.World]:
    """Two gateways (the second with two workers) sharing one Redis."""
    with h.world(tmp_path_factory.mktemp("redis")) as w:
        redis_url = w.redis()
        source = ["--manifests", str(manifests(w.tmp / "m", w.mock("upstream")))]
        base1 = w.serve(source, "--redis-url", redis_url, name="gw1")
        base2 = w.serve(source, "--redis-url", redis_url, "--workers", "2", name="gw2")
        w.update(bases=[base1, base2], redis_url=redis_url, source=source)
        yield w


def test_two_gateways_sharing_redis_admit_exactly_the_limit(redis_world: dict[str, Any]) -> None:
    avoid_minute_edge()
    codes = asyncio.run(burst(redis_world["bases"], KEYS["shared"], 60))
    assert codes.count(200) == 15
    assert codes.count(429) == 45
    for base in redis_world["bases"]:
        assert usage(base, KEYS["shared"])["requestsThisMinute"] == 15
        assert httpx.get(base + "/readyz").json()["limiter"] == "redis"
    # gw2 runs two workers; /metrics on either one sums both (prometheus multiprocess mode)
    served = h.metric(redis_world["bases"][1], "llmplatform_requests_total", tenant="shared/shared")
    assert served == 30


def test_redis_unreachable_follows_the_failure_mode(redis_world: dict[str, Any]) -> None:
    tmp = redis_world["tmp"]
    redis, redis_url = h.start_redis(tmp)
    source = redis_world["source"]
    local, local_base = h.start_gateway(tmp, source, "--redis-url", redis_url, name="local")
    refuse, refuse_base = h.start_gateway(
        tmp, source, "--redis-url", redis_url, "--redis-failure-mode", "refuse", name="refuse"
    )
    try:
        redis.stop()
        time.sleep(1.5)  # the probe runs once a second
        ok = client(local_base, KEYS["burst"]).chat.completions.create(model="auto", messages=MESSAGES)
        assert ok.choices
        ready = httpx.get(local_base + "/readyz")
        assert ready.status_code == 200 and ready.json()["limiter"] == "redis unreachable (local)"
        assert h.metric(local_base, "llmplatform_redis_up") == 0
        with pytest.raises(openai.InternalServerError) as exc:
            client(refuse_base, KEYS["burst"]).chat.completions.create(model="auto", messages=MESSAGES)
        assert exc.value.status_code == 503 and exc.value.code == "limits_unavailable"
        assert httpx.get(refuse_base + "/readyz").status_code == 503
        assert local.popen.poll() is None and refuse.popen.poll() is None
        # Redis comes back on the same address: both return to the shared limiter
        redis, _ = h.start_redis(tmp, port=int(redis_url.rsplit(":", 1)[1].split("/")[0]))
        deadline = time.monotonic() + 5
        while {httpx.get(b + "/readyz").json()["limiter"] for b in (local_base, refuse_base)} != {"redis"}:
            assert time.monotonic() < deadline, "the gateways did not return to Redis"
            time.sleep(0.1)
        assert httpx.get(refuse_base + "/readyz").status_code == 200
        assert h.metric(local_base, "llmplatform_redis_up") == 1
        ok = client(refuse_base, KEYS["burst"]).chat.completions.create(model="auto", messages=MESSAGES)
        assert ok.choices
    finally:
        local.stop()
        refuse.stop()
        redis.stop()


def test_redis_settles_tokens_and_cost_to_reported_usage(redis_world: dict[str, Any]) -> None:
    avoid_minute_edge()
    base1, base2 = redis_world["bases"]
    first = client(base1, KEYS["tokens"]).chat.completions.create(
        model="auto", messages=MESSAGES, max_tokens=100
    )
    second = client(base2, KEYS["tokens"]).chat.completions.create(
        model="auto", messages=MESSAGES, max_tokens=100
    )
    assert first.usage is not None and second.usage is not None
    used = first.usage.total_tokens + second.usage.total_tokens
    # both 110-token worst cases fit the 150 tokens/minute only because each was settled in Redis
    assert usage(base1, KEYS["tokens"])["tokensToday"] == used
    assert usage(base2, KEYS["tokens"])["tokensToday"] == used
    ok = client(base2, KEYS["budget"]).chat.completions.create(
        model="pricey", messages=MESSAGES, max_tokens=10
    )
    assert ok.usage is not None
    assert usage(base1, KEYS["budget"])["costThisMonthUSD"] == pytest.approx(ok.usage.total_tokens * 0.01)
