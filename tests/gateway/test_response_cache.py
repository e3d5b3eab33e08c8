"""The response cache through the gateway's HTTP surface, with the official `openai` client.

A hit is proven by the mock upstream's request counter not moving; each test uses its own
prompt so tests do not hit each other's entries. The Redis test runs two gateway processes on
one Redis and shows an entry written by one is served by the other.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

from llmplatform_testing import gateway as h

KEY_A = "llmp-cache-a-key"
KEY_A2 = "llmp-cache-a2-key"
KEY_B = "llmp-cache-b-key"
TTL = 2


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("mock")
    redis_url = gateway_world.redis()
    docs = [
        h.model("alpha", url),
        h.policy({"standard": ["alpha"]}, cache={"enabled": True, "ttlSeconds": TTL}),
        *h.tenant(
            "cache-a", {"a": KEY_A, "a2": KEY_A2}, ["standard"], userLimits={"requestsPerMinute": 1000}
        ),
        *h.tenant("cache-b", {"b": KEY_B}, ["standard"]),
    ]
    gateway_world.gateway(docs)
    source = ["--manifests", str(gateway_world["manifests"])]
    gateway_world["shared"] = [
        gateway_world.serve(source, "--redis-url", redis_url, name=name) for name in ("r1", "r2")
    ]
    return gateway_world


def client(base: str, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def upstream_requests(world: dict[str, Any]) -> int:
    return int(h.mock_stats(world["mock"])["requests"])


def ask(base: str, prompt: str, key: str = KEY_A, **kw: Any) -> Any:
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 4)
    return client(base, key).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": prompt}], **kw
    )


def fresh() -> str:
    return f"cache test {uuid.uuid4().hex}"


def test_second_identical_request_is_a_hit(world: dict[str, Any]) -> None:
    prompt = fresh()
    before = upstream_requests(world)
    hits = h.metric(world["base"], "llmplatform_cache_hits_total", tenant="cache-a/cache-a")
    first = ask(world["base"], prompt)
    second = ask(world["base"], prompt, user="someone-else")  # `user` is not part of the key
    assert first.headers["x-llmplatform-cache"] == "miss"
    assert second.headers["x-llmplatform-cache"] == "hit"
    assert upstream_requests(world) == before + 1
    a, b = first.parse(), second.parse()
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage == b.usage
    assert second.headers["x-llmplatform-model"] == "alpha"
    # a hit is limited and reported like any request
    assert second.headers["x-ratelimit-limit-requests"] == "1000"
    assert int(second.headers["x-ratelimit-remaining-requests"]) < 1000
    assert (
        second.headers["x-llmplatform-data-classification"]
        == first.headers["x-llmplatform-data-classification"]
    )
    assert h.metric(world["base"], "llmplatform_cache_hits_total", tenant="cache-a/cache-a") == hits + 1


def test_hits_count_tokens_but_cost_nothing(world: dict[str, Any]) -> None:
    prompt = fresh()
    ask(world["base"], prompt)
    labels = {"tenant": "cache-a/cache-a", "model": "alpha"}
    cost = h.metric(world["base"], "llmplatform_cost_usd_total", **labels)
    tokens = h.metric(world["base"], "llmplatform_tokens_total", **labels)
    used = client(world["base"]).get("/llmplatform/usage", cast_to=object)
    hit = ask(world["base"], prompt)
    assert hit.headers["x-llmplatform-cache"] == "hit"
    assert h.metric(world["base"], "llmplatform_cost_usd_total", **labels) == cost
    assert h.metric(world["base"], "llmplatform_tokens_total", **labels) > tokens
    after = client(world["base"]).get("/llmplatform/usage", cast_to=object)
    assert isinstance(used, dict) and isinstance(after, dict)
    assert after["tokensToday"] > used["tokensToday"]
    assert after["costThisMonthUSD"] == used["costThisMonthUSD"]


def test_what_differs_misses(world: dict[str, Any]) -> None:
    prompt = fresh()
    assert ask(world["base"], prompt).headers["x-llmplatform-cache"] == "miss"
    before = upstream_requests(world)
    assert ask(world["base"], prompt + "!").headers["x-llmplatform-cache"] == "miss"
    assert ask(world["base"], prompt, max_tokens=3).headers["x-llmplatform-cache"] == "miss"
    assert ask(world["base"], prompt, key=KEY_B).headers["x-llmplatform-cache"] == "miss"
    # another key of the same tenant shares the tenant's entries
    assert ask(world["base"], prompt, key=KEY_A2).headers["x-llmplatform-cache"] == "hit"
    # temperature other than 0: the cache does not apply, and says nothing
    warm = ask(world["base"], prompt, temperature=0.7)
    assert "x-llmplatform-cache" not in warm.headers
    assert "x-llmplatform-cache" not in ask(world["base"], prompt, temperature=0.7).headers
    assert upstream_requests(world) == before + 5


def test_entries_expire(world: dict[str, Any]) -> None:
    prompt = fresh()
    ask(world["base"], prompt)
    assert ask(world["base"], prompt).headers["x-llmplatform-cache"] == "hit"
    time.sleep(TTL + 0.3)
    assert ask(world["base"], prompt).headers["x-llmplatform-cache"] == "miss"


def test_streamed_request_is_answered_from_the_cache(world: dict[str, Any]) -> None:
    prompt = fresh()
    text = ask(world["base"], prompt).parse().choices[0].message.content
    before = upstream_requests(world)
    raw = ask(world["base"], prompt, stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-llmplatform-cache"] == "hit"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert upstream_requests(world) == before


def test_a_stream_fills_the_cache(world: dict[str, Any]) -> None:
    prompt = fresh()

    def stream() -> tuple[str, str]:
        raw = ask(world["base"], prompt, stream=True)
        chunks = list(raw.parse())
        assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk
        return raw.headers["x-llmplatform-cache"], "".join(c.choices[0].delta.content or "" for c in chunks)

    before = upstream_requests(world)
    assert stream() == ("miss", "this is a test ")
    assert stream() == ("hit", "this is a test ")
    assert ask(world["base"], prompt).parse().choices[0].message.content == "this is a test "
    assert upstream_requests(world) == before + 1


def test_redis_cache_is_shared_by_gateway_processes(world: dict[str, Any]) -> None:
    prompt = fresh()
    first, second = world["shared"]
    before = upstream_requests(world)
    assert ask(first, prompt).headers["x-llmplatform-cache"] == "miss"
    assert ask(second, prompt).headers["x-llmplatform-cache"] == "hit"
    assert ask(first, prompt).headers["x-llmplatform-cache"] == "hit"
    assert upstream_requests(world) == before + 1
    # the in-process gateway does not see the Redis entries
    assert ask(world["base"], prompt).headers["x-llmplatform-cache"] == "miss"


def test_redis_outage_turns_the_cache_into_misses(tmp_path: Path, world: dict[str, Any]) -> None:
    redis, redis_url = h.start_redis(tmp_path)
    procs = [redis]
    try:
        docs = [
            h.model("alpha", world["mock"]),
            h.policy({"standard": ["alpha"]}, cache={"enabled": True, "ttlSeconds": 60}),
            *h.tenant("cache-a", {"a": KEY_A}, ["standard"]),
        ]
        manifests = h.write_manifests(tmp_path / "manifests", docs)
        gw, base = h.start_gateway(tmp_path, ["--manifests", str(manifests)], "--redis-url", redis_url)
        procs.append(gw)
        prompt = fresh()
        assert ask(base, prompt).headers["x-llmplatform-cache"] == "miss"
        assert ask(base, prompt).headers["x-llmplatform-cache"] == "hit"
        redis.stop()
        before = upstream_requests(world)
        raw = ask(base, prompt)  # served by the upstream, not refused
        assert raw.headers["x-llmplatform-cache"] == "miss"
        assert raw.parse().choices[0].message.content
        assert upstream_requests(world) == before + 1
    finally:
        for p in procs:
            p.stop()
