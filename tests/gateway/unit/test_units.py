"""Unit tests for the gateway's pure parts: routing order, health and circuit breaker, limit
plans and the in-process limiter, token estimates, header formats."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from llmplatform.contract.config import Limits
from llmplatform.gateway.admission import duration, ratelimit_headers
from llmplatform.gateway.compiled import Compiled, compile_config
from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.health import CLOSED, HALF_OPEN, OPEN, HealthBook, ModelHealth
from llmplatform.gateway.limits import LocalLimiter, plan, window_id
from llmplatform.gateway.router import candidates
from llmplatform.gateway.tokens import chat_prompt_tokens, prompt_tokens, text_tokens
from llmplatform.render import render
from llmplatform_testing import gateway as h


def compiled(docs: list[dict[str, Any]]) -> Compiled:
    secrets = [h.secret_doc("upstream", h.PLATFORM, {"api-key": "sk-x"})]
    secrets += [d for d in docs if d["kind"] == "Secret"]
    result = render([d for d in docs if d["kind"] != "Secret"], secrets)
    return compile_config(result.gateway_config, lambda ns, name, key: b"sk-x")


def world(**policy: Any) -> Compiled:
    return compiled(
        [
            h.model("cheap", "http://a", pricing={"inputPerMillionTokens": 1, "outputPerMillionTokens": 1}),
            h.model("dear", "http://b", pricing={"inputPerMillionTokens": 10, "outputPerMillionTokens": 10}),
            h.model("small", "http://c", tier="efficient", contextWindow=100),
            h.policy({"standard": ["dear", "cheap"], "efficient": ["small"]}, **policy),
            *h.tenant("t", {"k": "key-1"}, ["standard", "efficient"]),
            *h.tenant("e", {"k": "key-2"}, ["efficient"]),
        ]
    )


def route(c: Compiled, tenant: str = "t/t", model: str = "auto", **kw: Any) -> list[str]:
    args: dict[str, Any] = {
        "tier_header": None,
        "capability": "chat",
        "prompt_tokens": 10,
        "max_tokens": 10,
        "priority": 5,
    }
    args.update(kw)
    health = args.pop("health", HealthBook())
    found = candidates(c.tenants[tenant], model, health=health, known_models=c.models, **args)
    return [x.model.name for x in found]


def test_scoring_prefers_cheap_then_falls_back_across_tiers() -> None:
    c = world(fallback={"maxAttempts": 3, "acrossTiers": ["efficient"]})
    assert route(c) == ["cheap", "dear", "small"]


def test_observed_failures_and_latency_move_a_model_down() -> None:
    c = world()
    health = HealthBook()
    for _ in range(10):
        health.get("llm-platform/cheap").record_failure(1000)
        health.get("llm-platform/dear").record_success(5.0)
    assert route(c, health=health) == ["dear", "cheap"]


def test_named_model_goes_first_then_its_tier() -> None:
    assert route(world(), model="dear") == ["dear", "cheap"]


def test_tier_header_with_auto_and_errors() -> None:
    c = world()
    assert route(c, tier_header="efficient") == ["small"]
    with pytest.raises(GatewayError) as exc:
        route(c, tenant="e/e", model="cheap")
    assert exc.value.status == 403
    with pytest.raises(GatewayError) as exc:
        route(c, model="gpt-17")
    assert exc.value.status == 404
    with pytest.raises(GatewayError) as exc:
        route(c, model="small", prompt_tokens=95)
    assert exc.value.status == 400 and exc.value.code == "context_length_exceeded"


def test_context_window_skips_models_that_cannot_hold_the_request() -> None:
    c = world(fallback={"maxAttempts": 3, "acrossTiers": ["efficient"]})
    assert route(c, prompt_tokens=50, max_tokens=60) == ["cheap", "dear"]


def test_circuit_breaker_opens_half_opens_and_closes() -> None:
    health = ModelHealth()
    for _ in range(3):
        health.record_failure(3, now=100.0)
    assert health.state == OPEN
    assert not health.allow(10, now=105.0)
    assert health.allow(10, now=111.0) and health.state == HALF_OPEN
    assert not health.allow(10, now=111.0)  # one trial at a time
    health.record_failure(3, now=112.0)
    assert health.state == OPEN
    assert health.allow(10, now=123.0)
    health.record_success(50.0)
    assert health.state == CLOSED and health.allow(10, now=123.0)


def test_local_limiter_is_all_or_nothing_and_settles() -> None:
    limits = Limits(requests_per_minute=2, tokens_per_minute=100)
    limiter = LocalLimiter()

    async def run() -> None:
        first = plan("ns/t", limits, None, None, tokens=60, cost_usd=0.0, now=1000.0)
        denial, _ = await limiter.reserve(first)
        assert denial is None
        second = plan("ns/t", limits, None, None, tokens=60, cost_usd=0.0, now=1000.0)
        denial, _ = await limiter.reserve(second)
        assert denial is not None and denial.charge.field == "tokens_per_minute"
        # the refused request took nothing, not even its request count
        assert (await limiter.read([first[0].key]))[0] == 1
        await limiter.settle(first, [20 - 60 if c.metric == "tok" else 0 for c in first])
        denial, _ = await limiter.reserve(second)
        assert denial is None

    asyncio.run(run())


def test_windows_and_user_scopes() -> None:
    assert window_id("m", 119.0) == ("1", 1.0)
    assert window_id("mo", 0.0)[0] == "197001"
    assert window_id("mo", 0.0)[1] == 31 * 86400
    charges = plan("ns/t", Limits(), "bob", Limits(requests_per_minute=1), tokens=5, cost_usd=0.5, now=0.0)
    users = [c for c in charges if c.scope == "user"]
    assert len(users) == 5 and all("{ns/t}" in c.key for c in charges)
    assert "bob" not in users[0].key  # end-user names are hashed in keys
    assert next(c for c in charges if c.metric == "usd").amount == 500_000


def test_ratelimit_headers_and_durations() -> None:
    charges = plan(
        "ns/t", Limits(requests_per_minute=10, requests_per_hour=100, tokens_per_day=1000), None, None, 7, 0.0
    )
    headers = ratelimit_headers(charges, [c.amount + 2 for c in charges])
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-remaining-requests"] == "7"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert duration(0.2) == "1s" and duration(360) == "6m0s" and duration(3723) == "1h2m3s"


def test_token_estimates_are_conservative_and_total() -> None:
    assert text_tokens("") == 0 and text_tokens("abc") == 1 and text_tokens("abcd") == 2
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hello world"}]},
        "junk",
        {"content": None},
    ]
    assert chat_prompt_tokens(messages) == 3 + 3 * 4 + text_tokens("hello world")
    assert prompt_tokens({"prompt": [1, 2, 3]}, "completions") == 3
    assert prompt_tokens({"input": ["ab", [1, 2]]}, "embeddings") == 1 + 2
    assert prompt_tokens({"input": {"weird": True}}, "embeddings") == 0


def test_upstream_key_is_not_in_the_compiled_models_repr() -> None:
    c = world()
    model = c.models["cheap"]
    assert model.api_key == "sk-x" and "sk-x" not in repr(model)
    assert c.keys[next(iter(c.keys))].tenant.id in ("t/t", "e/e")


def test_anthropic_models_are_routed_for_chat_only_to_the_messages_api() -> None:
    c = compiled(
        [
            h.model("claude", "http://a", tier="premium", provider="anthropic"),
            h.model("cheap", "http://b"),
            h.policy({"premium": ["claude"], "standard": ["cheap"]}),
            *h.tenant("t", {"k": "key-1"}, ["premium", "standard"]),
        ]
    )
    claude = c.models["claude"]
    # `messages`: where a Messages API request is passed through (messagesapi/), not a capability
    assert claude.urls == {"chat": "http://a/v1/messages", "messages": "http://a/v1/messages"}
    assert claude.capabilities == {"chat"}
    assert route(c, model="premium") == ["claude"]
    with pytest.raises(GatewayError) as exc:  # the spec lists completions; the Messages API has none
        route(c, model="claude", capability="completions")
    assert exc.value.status == 400 and exc.value.code == "unsupported_capability"


def test_request_priority_trades_price_for_speed() -> None:
    c = compiled(
        [
            h.model(
                "slow-cheap",
                "http://a",
                expectedLatencyMs=2000,
                pricing={"inputPerMillionTokens": 1, "outputPerMillionTokens": 1},
            ),
            h.model(
                "fast-dear",
                "http://b",
                expectedLatencyMs=500,
                pricing={"inputPerMillionTokens": 10, "outputPerMillionTokens": 10},
            ),
            h.policy(
                {"standard": ["slow-cheap", "fast-dear"]},
                scoring={"availability": 0, "cost": 0, "latency": 0, "priority": 1},
            ),
            *h.tenant("t", {"k": "key-1"}, ["standard"]),
        ]
    )
    assert route(c, priority=10) == ["fast-dear", "slow-cheap"]
    assert route(c, priority=1) == ["slow-cheap", "fast-dear"]


def test_audit_sink_buffers_and_flushes_whole_lines(tmp_path: Any) -> None:
    from llmplatform.gateway.audit import FLUSH_LINES, AuditSink

    path = tmp_path / "audit.jsonl"
    sink = AuditSink(str(path))

    async def run() -> None:
        for i in range(FLUSH_LINES + 10):
            sink.write({"n": i})
        # the start record, then a full buffer is written at once
        assert len(path.read_text().splitlines()) == 1 + FLUSH_LINES
        await asyncio.sleep(0.2)  # the rest within FLUSH_SECONDS
        assert len(path.read_text().splitlines()) == 1 + FLUSH_LINES + 10

    asyncio.run(run())
    sink.write({"n": "outside a loop"})
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["kind"] == "start" and lines[-1]["kind"] == "close"
    assert [x["n"] for x in lines[1:-2]] == list(range(FLUSH_LINES + 10))
    assert lines[-2]["n"] == "outside a loop"
