"""Fault injection with the mock upstream: fallback sequences, timeouts, drops, circuit breaker.

Each test sets the mocks' behaviour, sends one request with the official client and checks
both what the client saw and what each upstream received (the mock's counters), so a fallback
that never happened cannot pass.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing.procs import free_port

KEY = "llmp-test-faults-key"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
NAMES = ("alpha", "beta", "gamma", "delta")


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    urls = {name: gateway_world.mock(name, hang_seconds=5) for name in NAMES}
    closed_port = free_port()
    docs = [
        h.model("alpha", urls["alpha"]),
        h.model("beta", urls["beta"]),
        h.model("gamma", urls["gamma"], tier="efficient"),
        h.model("delta", urls["delta"], tier="premium"),
        h.model("omega", f"http://127.0.0.1:{closed_port}", tier="specialized"),
        h.policy(
            {
                "standard": ["alpha", "beta"],
                "efficient": ["gamma"],
                "premium": ["delta"],
                "specialized": ["omega"],
            },
            fallback={
                "maxAttempts": 3,
                "retryOn": [429, 500, 502, 503, 504, "timeout", "connect"],
                "acrossTiers": ["efficient"],
            },
            timeouts={"connectSeconds": 0.5, "requestSeconds": 0.5, "streamIdleSeconds": 0.3},
            circuitBreaker={"consecutiveFailures": 3, "openSeconds": 1},
        ),
        *h.tenant("team-f", {"ci": KEY}, ["standard", "efficient", "premium", "specialized"]),
    ]
    gateway_world.gateway(docs)
    return gateway_world


@pytest.fixture
def w(world: dict[str, Any]) -> dict[str, Any]:
    """Healthy mocks with zeroed counters, and one success per model so the failures one test
    causes never add up with the next test's into an open circuit."""
    for name in NAMES:
        h.mock_config(world[name], fail_next=0, failure_rate=0.0, failure_mode="status", chunk_delay_ms=0)
    for name in ("alpha", "beta", "gamma"):
        client(world).chat.completions.create(model=name, messages=MESSAGES)
    for name in NAMES:
        httpx.post(world[name] + "/_mock/reset").raise_for_status()
    return world


def client(w: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=w["base"] + "/v1", api_key=KEY, max_retries=0)


def counts(w: dict[str, Any]) -> dict[str, int]:
    return {name: h.mock_stats(w[name])["requests"] for name in NAMES}


def test_500_falls_back_within_the_tier(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], fail_next=1, failure_status=500)
    raw = client(w).chat.completions.with_raw_response.create(model="alpha", messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-llmplatform-model"] == "beta"
    assert raw.headers["x-llmplatform-fallback-level"] == "1"
    assert counts(w) == {"alpha": 1, "beta": 1, "gamma": 0, "delta": 0}
    assert h.metric(w["base"], "llmplatform_fallbacks_total", model="beta") >= 1
    assert h.metric(w["base"], "llmplatform_upstream_errors_total", model="alpha", kind="500") >= 1


def test_429_then_503_falls_back_across_tiers(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], fail_next=1, failure_status=429)
    h.mock_config(w["beta"], fail_next=1, failure_status=503)
    raw = client(w).chat.completions.with_raw_response.create(model="alpha", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "gamma"
    assert raw.headers["x-llmplatform-tier"] == "efficient"
    assert raw.headers["x-llmplatform-fallback-level"] == "2"
    assert counts(w) == {"alpha": 1, "beta": 1, "gamma": 1, "delta": 0}


def test_timeout_falls_back(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], fail_next=1, failure_mode="timeout")
    started = time.monotonic()
    raw = client(w).chat.completions.with_raw_response.create(model="alpha", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "beta"
    assert 0.5 <= time.monotonic() - started < 2.0


def test_connection_drop_before_response_falls_back(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], fail_next=1, failure_mode="drop")
    raw = client(w).chat.completions.with_raw_response.create(model="alpha", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "beta"


def test_connect_refused_falls_back(w: dict[str, Any]) -> None:
    raw = client(w).chat.completions.with_raw_response.create(model="omega", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "gamma"
    assert raw.headers["x-llmplatform-fallback-level"] == "1"


def test_every_candidate_failing_is_503(w: dict[str, Any]) -> None:
    for name in ("alpha", "beta", "gamma"):
        h.mock_config(w[name], fail_next=1, failure_status=502)
    with pytest.raises(openai.InternalServerError) as exc:
        client(w).chat.completions.create(model="alpha", messages=MESSAGES)
    assert exc.value.status_code == 503
    assert exc.value.code == "upstream_unavailable"
    assert counts(w) == {"alpha": 1, "beta": 1, "gamma": 1, "delta": 0}


def test_every_candidate_timing_out_is_504(w: dict[str, Any]) -> None:
    for name in ("alpha", "beta", "gamma"):
        h.mock_config(w[name], fail_next=1, failure_mode="timeout")
    with pytest.raises(openai.APIStatusError) as exc:
        client(w).chat.completions.create(model="alpha", messages=MESSAGES)
    assert exc.value.status_code == 504
    assert exc.value.code == "upstream_timeout"


def test_max_attempts_bounds_the_sequence(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], fail_next=1, failure_status=500)
    h.mock_config(w["beta"], fail_next=1, failure_status=500)
    h.mock_config(w["gamma"], fail_next=1, failure_status=500)
    with pytest.raises(openai.InternalServerError):
        client(w).chat.completions.create(model="standard", messages=MESSAGES)
    assert sum(counts(w).values()) == 3


def test_status_not_in_retry_on_is_passed_through(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], fail_next=1, failure_status=422)
    with pytest.raises(openai.UnprocessableEntityError) as exc:
        client(w).chat.completions.create(model="alpha", messages=MESSAGES)
    assert exc.value.code == "mock_failure"
    assert counts(w)["beta"] == 0


def test_stream_fails_over_before_the_first_chunk(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], fail_next=1, failure_status=500)
    with client(w).chat.completions.with_streaming_response.create(
        model="alpha", messages=MESSAGES, stream=True, max_tokens=4
    ) as response:
        assert response.headers["x-llmplatform-model"] == "beta"
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "this is a test "


def test_drop_mid_stream_is_reported_in_band_and_not_retried(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], fail_next=1, failure_mode="drop")
    received: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in client(w).chat.completions.create(
            model="alpha", messages=MESSAGES, stream=True, max_tokens=8
        ):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "this is a test "  # half of the 8 tokens arrived first
    assert "mid-stream" in exc.value.message
    assert counts(w) == {"alpha": 1, "beta": 0, "gamma": 0, "delta": 0}


def test_stream_idle_timeout_is_reported_in_band(w: dict[str, Any]) -> None:
    h.mock_config(w["alpha"], chunk_delay_ms=800)
    body = {"model": "alpha", "messages": MESSAGES, "stream": True, "max_tokens": 3}
    with httpx.stream(
        "POST", w["base"] + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.status_code == 200
    assert '"error"' in lines[-2] and "timed out" in lines[-2]
    assert lines[-1] == "data: [DONE]"
    assert counts(w)["beta"] == 0


def test_circuit_opens_and_closes(w: dict[str, Any]) -> None:
    c = client(w)
    h.mock_config(w["delta"], failure_rate=1.0, failure_status=500)
    for _ in range(3):  # consecutiveFailures: 3, each one falls back to gamma
        raw = c.chat.completions.with_raw_response.create(model="delta", messages=MESSAGES)
        assert raw.headers["x-llmplatform-model"] == "gamma"
    assert h.mock_stats(w["delta"])["requests"] == 3
    assert h.metric(w["base"], "llmplatform_circuit_breaker_state", model="delta") == 1
    raw = c.chat.completions.with_raw_response.create(model="delta", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "gamma"
    assert h.mock_stats(w["delta"])["requests"] == 3  # open: delta was not even tried
    h.mock_config(w["delta"], failure_rate=0.0)
    time.sleep(1.1)  # openSeconds: 1, then one trial request goes through
    raw = c.chat.completions.with_raw_response.create(model="delta", messages=MESSAGES)
    assert raw.headers["x-llmplatform-model"] == "delta"
    assert h.metric(w["base"], "llmplatform_circuit_breaker_state", model="delta") == 0
