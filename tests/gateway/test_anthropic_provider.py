"""`provider: anthropic` models through the gateway, driven by the official `openai` client.

The upstream is llmplatform_testing.anthropic_server, a real process that validates every request
with the official `anthropic` package's types and answers with its models; after each test the
`anthropic` fixture checks that every request the gateway sent it was valid. An OpenAI-style
mock upstream shares the tier so fallback from an overloaded Anthropic model can be seen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h

KEY = "llmp-test-anthropic-key"
COST_KEY = "llmp-test-anthropic-cost-key"
DEFAULT_TEXT = "Hello from the Anthropic test server."


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    anth_url = gateway_world.anthropic()
    alpha_url = gateway_world.mock("alpha")
    secret = {"name": "upstream", "key": "api-key"}
    docs = [
        # the endpoint as the server root, as for https://api.anthropic.com
        h.model(
            "claude",
            anth_url,
            tier="premium",
            provider="anthropic",
            upstreamModel="claude-test-1",
            maxOutputTokens=1000,
            capabilities=["chat", "completions"],
            pricing={"inputPerMillionTokens": 3, "outputPerMillionTokens": 15},
            endpoint={"url": anth_url, "apiKeySecretRef": secret},
        ),
        # given with /v1, and no maxOutputTokens: max_tokens defaults to the documented 4096
        h.model("haiku", anth_url, tier="efficient", provider="anthropic", upstreamModel="claude-test-2"),
        h.model("alpha", alpha_url, tier="premium"),
        h.policy(
            {"premium": ["claude", "alpha"], "efficient": ["haiku"]},
            dataGovernance={"piiRedaction": True, "outputScanning": True},
            cache={"enabled": True, "ttlSeconds": 60},
        ),
        *h.tenant("team-a", {"alice": KEY}, ["premium", "efficient"]),
        *h.tenant("team-cost", {"carol": COST_KEY}, ["premium"]),
    ]
    gateway_world.gateway(docs)
    return gateway_world


@pytest.fixture()
def anthropic(world: dict[str, Any]) -> Iterator[str]:
    """The test server's URL, emptied before the test; after it, every request the gateway sent
    must have passed the server's validation (it answers 400 to anything invalid)."""
    url = str(world["anthropic"])
    httpx.post(url + "/_reset").raise_for_status()
    yield url
    assert [r.get("error") for r in received(url) if not r["valid"]] == []


def client(world: dict[str, Any], key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=world["base"] + "/v1", api_key=key, max_retries=0)


def script(url: str, *replies: dict[str, Any]) -> None:
    httpx.post(url + "/_script", json={"replies": list(replies)}).raise_for_status()


def received(url: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = httpx.get(url + "/_received").json()
    return seen


def anthropic_replies_left(url: str) -> int:
    left: int = httpx.post(url + "/_script", json={"replies": []}).json()["queued"]
    return left


def last_body(url: str) -> dict[str, Any]:
    seen = received(url)
    assert seen and seen[-1]["valid"], seen[-1:] or "nothing received"
    body: dict[str, Any] = seen[-1]["body"]
    return body


def test_system_prompt_multi_turn_headers_and_usage(world: dict[str, Any], anthropic: str) -> None:
    script(anthropic, {"text": "Paris.", "usage": {"input_tokens": 123, "output_tokens": 45}})
    raw = client(world).chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "system", "content": "Answer in one word."},
            {"role": "developer", "content": [{"type": "text", "text": "Be exact."}]},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome."},
            {"role": "user", "content": [{"type": "text", "text": "And of France?"}]},
        ],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (123, 45)
    assert completion.usage.total_tokens == 168
    assert raw.headers["x-llmplatform-model"] == "claude"
    assert raw.headers["x-llmplatform-fallback-level"] == "0"

    sent = received(anthropic)[-1]
    assert sent["valid"]
    assert sent["headers"]["x-api-key"] == h.UPSTREAM_KEY
    assert sent["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {k.lower() for k in sent["headers"]}
    body = sent["body"]
    assert body["model"] == "claude-test-1"
    assert body["system"] == "Answer in one word.\n\nBe exact."
    assert [(m["role"], m["content"][0]["text"]) for m in body["messages"]] == [
        ("user", "Capital of Italy?"),
        ("assistant", "Rome."),
        ("user", "And of France?"),
    ]
    assert body["max_tokens"] == 1000  # the model's maxOutputTokens
    assert "stream" not in body


def test_max_tokens_from_request_model_or_default(world: dict[str, Any], anthropic: str) -> None:
    c = client(world)
    hello = [{"role": "user", "content": "hi"}]
    c.chat.completions.create(model="claude", messages=hello, max_tokens=7)  # type: ignore[arg-type]
    assert last_body(anthropic)["max_tokens"] == 7
    c.chat.completions.create(model="claude", messages=hello, max_completion_tokens=9)  # type: ignore[arg-type]
    assert last_body(anthropic)["max_tokens"] == 9
    c.chat.completions.create(model="haiku", messages=hello)  # type: ignore[arg-type]
    body = last_body(anthropic)
    assert body["model"] == "claude-test-2" and body["max_tokens"] == 4096


def test_stop_sequences_sampling_and_user(world: dict[str, Any], anthropic: str) -> None:
    script(
        anthropic,
        {"text": "one two", "stop_reason": "stop_sequence", "stop_sequence": "END"},
        {"text": "cut", "stop_reason": "max_tokens"},
    )
    c = client(world)
    hello: Any = [{"role": "user", "content": "count"}]
    first = c.chat.completions.create(
        model="claude", messages=hello, stop=["END", "STOP"], temperature=0.2, top_p=0.5, user="u-42"
    )
    assert first.choices[0].finish_reason == "stop"
    body = last_body(anthropic)
    assert body["stop_sequences"] == ["END", "STOP"]
    assert body["metadata"] == {"user_id": hashlib.sha256(b"u-42").hexdigest()}  # opaque, as asked
    # the Messages API types have no sampling parameters: accepted from the client, not sent
    assert "temperature" not in body and "top_p" not in body
    second = c.chat.completions.create(model="claude", messages=hello, stop="END", max_tokens=3)
    assert second.choices[0].finish_reason == "length"
    assert last_body(anthropic)["stop_sequences"] == ["END"]


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tools_and_tool_results_round_trip(world: dict[str, Any], anthropic: str) -> None:
    call = {"id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "unit": "C"}}
    script(anthropic, {"text": "Let me check.", "tool_use": call}, {"text": "Sunny, 21 C."})
    c = client(world)
    question: Any = [{"role": "user", "content": "Weather in Paris?"}]
    first = c.chat.completions.create(
        model="claude", messages=question, tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    tool_call = choice.message.tool_calls[0]
    assert tool_call.id == "toolu_01" and tool_call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(tool_call.function.arguments) == call["input"]  # type: ignore[union-attr]
    body = last_body(anthropic)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == {"type": "any"}

    follow_up: Any = [
        *question,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "toolu_01", "content": "21 C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": [{"type": "text", "text": "no rain"}]},
        {"role": "user", "content": "Summarise."},
    ]
    second = c.chat.completions.create(
        model="claude",
        messages=follow_up,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    assert second.choices[0].message.content == "Sunny, 21 C."
    body = last_body(anthropic)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": call["input"]},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "21 C, sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_02", "content": "no rain"},
        {"type": "text", "text": "Summarise."},
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}


def test_stream_text_and_usage_chunk(world: dict[str, Any], anthropic: str) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    script(
        anthropic,
        {"text": text, "usage": {"input_tokens": 11, "output_tokens": 12}},
        {"text": text},
    )
    c = client(world)
    hello: Any = [{"role": "user", "content": "tell me"}]
    chunks = list(
        c.chat.completions.create(
            model="claude", messages=hello, stream=True, stream_options={"include_usage": True}
        )
    )
    assert last_body(anthropic)["stream"] is True
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 12)
    # without include_usage the client sees no usage chunk
    plain = list(c.chat.completions.create(model="claude", messages=hello, stream=True))
    assert all(ch.usage is None for ch in plain) and all(ch.choices for ch in plain)
    assert "".join(ch.choices[0].delta.content or "" for ch in plain) == text


def test_stream_tool_call_arguments(world: dict[str, Any], anthropic: str) -> None:
    call = {"id": "toolu_s", "name": "get_weather", "input": {"city": "Zürich", "days": [1, 2, 3]}}
    script(anthropic, {"text": None, "tool_use": call})
    stream = client(world).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    name, arguments, finish = None, "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            assert tc.index == 0
            if tc.function and tc.function.name:
                name = tc.function.name
            arguments += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather" and json.loads(arguments) == call["input"] and finish == "tool_calls"


def test_usage_and_cost_reach_limits_and_metrics(world: dict[str, Any], anthropic: str) -> None:
    script(
        anthropic,
        {"text": "a", "usage": {"input_tokens": 1000, "output_tokens": 2000}},
        {"text": "b", "usage": {"input_tokens": 500, "cache_read_input_tokens": 500, "output_tokens": 1000}},
    )
    c = client(world, COST_KEY)
    hello: Any = [{"role": "user", "content": "x"}]
    c.chat.completions.create(model="claude", messages=hello)
    streamed = list(
        c.chat.completions.create(
            model="claude", messages=hello, stream=True, stream_options={"include_usage": True}
        )
    )
    assert streamed[-1].usage is not None and streamed[-1].usage.prompt_tokens == 1000
    # 2000 in x $3/M + 3000 out x $15/M
    expected = 2000 * 3e-6 + 3000 * 15e-6
    usage = httpx.get(
        world["base"] + "/v1/llmplatform/usage", headers={"authorization": f"Bearer {COST_KEY}"}
    )
    assert usage.json()["tokensToday"] == 5000
    assert usage.json()["costThisMonthUSD"] == pytest.approx(expected, rel=1e-3)
    tenant = "team-cost/team-cost"
    assert h.metric(
        world["base"], "llmplatform_cost_usd_total", tenant=tenant, model="claude"
    ) == pytest.approx(expected)
    tokens = "llmplatform_tokens_total"
    assert h.metric(world["base"], tokens, tenant=tenant, model="claude", direction="in") == 2000
    assert h.metric(world["base"], tokens, tenant=tenant, model="claude", direction="out") == 3000


def test_anthropic_errors_become_openai_errors(world: dict[str, Any], anthropic: str) -> None:
    script(anthropic, {"error": {"status": 400, "type": "invalid_request_error", "message": "prompt is bad"}})
    c = client(world)
    hello: Any = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as bad:
        c.chat.completions.create(model="claude", messages=hello)
    assert bad.value.status_code == 400
    assert bad.value.body == {
        "message": "prompt is bad",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_request_error",
    }


def test_a_refused_provider_key_is_a_502_not_the_callers_401(world: dict[str, Any], anthropic: str) -> None:
    """401/403 from the provider concern the platform's key, which the caller cannot fix; the
    openai client must not see an AuthenticationError for its own (valid) key."""
    c = client(world)
    hello: Any = [{"role": "user", "content": "x"}]
    for status, kind in ((401, "authentication_error"), (403, "permission_error")):
        script(anthropic, {"error": {"status": status, "type": kind, "message": "invalid x-api-key"}})
        with pytest.raises(openai.InternalServerError) as exc:
            c.chat.completions.create(model="claude", messages=hello)
        assert exc.value.status_code == 502 and exc.value.code == "upstream_auth_failed"
        assert "'claude'" in exc.value.message and "provider credentials" in exc.value.message
    assert "upstream claude refused the provider credentials (HTTP 403)" in world["gw"].log.read_text()


def test_overloaded_anthropic_falls_back_to_openai_model(world: dict[str, Any], anthropic: str) -> None:
    before = h.metric(world["base"], "llmplatform_upstream_errors_total", model="claude", kind="503")
    script(anthropic, {"error": {"status": 529, "type": "overloaded_error", "message": "Overloaded"}})
    c = client(world)
    hello: Any = [{"role": "user", "content": "x"}]
    raw = c.chat.completions.with_raw_response.create(model="claude", messages=hello)
    assert raw.headers["x-llmplatform-model"] == "alpha"
    assert raw.headers["x-llmplatform-fallback-level"] == "1"
    assert raw.parse().choices[0].message.content  # the mock upstream's reply
    after = h.metric(world["base"], "llmplatform_upstream_errors_total", model="claude", kind="503")
    assert after == before + 1
    # the same for an `error` event that opens a stream, a 500 and a 429 (all in retryOn)
    script(
        anthropic,
        {"stream_error": {"type": "overloaded_error", "message": "Overloaded"}},
        {"error": {"status": 500, "type": "api_error", "message": "boom"}},
        {"error": {"status": 429, "type": "rate_limit_error", "message": "slow down"}},
    )
    stream = c.chat.completions.with_raw_response.create(model="claude", messages=hello, stream=True)
    assert stream.headers["x-llmplatform-model"] == "alpha"
    assert "".join(ch.choices[0].delta.content or "" for ch in stream.parse() if ch.choices)
    for _ in range(2):
        raw = c.chat.completions.with_raw_response.create(model="claude", messages=hello)
        assert raw.headers["x-llmplatform-model"] == "alpha"
    assert len(received(anthropic)) == 4 and not anthropic_replies_left(anthropic)


def test_failing_openai_model_falls_back_to_anthropic(world: dict[str, Any], anthropic: str) -> None:
    h.mock_config(world["alpha"], fail_next=1, failure_status=503)
    raw = client(world).chat.completions.with_raw_response.create(
        model="alpha", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-llmplatform-model"] == "claude"
    assert raw.headers["x-llmplatform-fallback-level"] == "1"
    assert raw.parse().choices[0].message.content == DEFAULT_TEXT
    assert last_body(anthropic)["model"] == "claude-test-1"


def test_error_event_mid_stream_is_sent_in_band(world: dict[str, Any], anthropic: str) -> None:
    failed = {"model": "claude", "status": "502", "tenant": "team-a/team-a"}
    before = h.metric(world["base"], "llmplatform_requests_total", **failed)
    errors = h.metric(world["base"], "llmplatform_upstream_errors_total", model="claude", kind="503")
    script(
        anthropic,
        {"text": "partial answer here", "stream_error": {"type": "overloaded_error", "after_text": True}},
    )
    stream = client(world).chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = ""
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            seen += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert seen == "partial "
    assert "scripted" in str(err.value)
    # counted as a failed stream: status 502 in metrics (and audit), an upstream error of the model
    assert h.metric(world["base"], "llmplatform_requests_total", **failed) == before + 1
    assert (
        h.metric(world["base"], "llmplatform_upstream_errors_total", model="claude", kind="503") == errors + 1
    )


def test_images_and_unsupported_input(world: dict[str, Any], anthropic: str) -> None:
    c = client(world)
    png = "data:image/png;base64,iVBORw0KGgo="
    content: Any = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": png}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    c.chat.completions.create(model="claude", messages=[{"role": "user", "content": content}])
    blocks = last_body(anthropic)["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    count = len(received(anthropic))
    bmp: Any = [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]
    with pytest.raises(openai.BadRequestError) as bad:
        c.chat.completions.create(model="claude", messages=[{"role": "user", "content": bmp}])
    assert "image/png" in bad.value.message and bad.value.code == "invalid_request"
    with pytest.raises(openai.BadRequestError) as bad:
        c.chat.completions.create(model="claude", messages=[{"role": "user", "content": "x"}], n=2)
    assert bad.value.param == "n"
    # completions are not offered by anthropic models even when the spec lists them
    with pytest.raises(openai.BadRequestError) as bad:
        c.completions.create(model="claude", prompt="x")
    assert bad.value.code == "unsupported_capability"
    assert len(received(anthropic)) == count  # none of these reached the upstream


def test_governance_redacts_what_reaches_anthropic_and_what_comes_back(
    world: dict[str, Any], anthropic: str
) -> None:
    """Redaction happens before translation and output scanning after it, for JSON and streams
    (an address split across Anthropic text deltas included)."""
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"to": "bob@corp.example"}'},
    }
    messages: Any = [
        {"role": "system", "content": "Reply to alice@corp.example."},
        {"role": "user", "content": "Ping me"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent to bob@corp.example"},
    ]
    script(
        anthropic,
        {"text": "Write to carol@corp.example now."},
        {"chunks": ["Write to da", "ve.smith@co", "rp.example", " now."]},
    )
    c = client(world)
    raw = c.chat.completions.with_raw_response.create(model="claude", messages=messages)
    assert raw.headers["x-llmplatform-model"] == "claude"
    assert raw.headers["x-llmplatform-redacted"] == "true"
    sent = json.dumps(last_body(anthropic))
    assert "corp.example" not in sent and sent.count("[EMAIL_REDACTED]") == 3
    assert last_body(anthropic)["messages"][1]["content"][0]["input"] == {"to": "[EMAIL_REDACTED]"}
    assert raw.parse().choices[0].message.content == "Write to [EMAIL_REDACTED] now."

    stream = c.chat.completions.create(model="claude", messages=messages, stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert text == "Write to [EMAIL_REDACTED] now."


def test_cache_stores_a_translated_stream_and_answers_json_from_it(
    world: dict[str, Any], anthropic: str
) -> None:
    script(anthropic, {"text": "Cached words here.", "usage": {"input_tokens": 8, "output_tokens": 4}})
    c = client(world)
    ask: Any = [{"role": "user", "content": "cache me"}]
    first = c.chat.completions.with_raw_response.create(
        model="claude", messages=ask, temperature=0, stream=True
    )
    assert first.headers["x-llmplatform-cache"] == "miss"
    assert (
        "".join(ch.choices[0].delta.content or "" for ch in first.parse() if ch.choices)
        == "Cached words here."
    )
    second = c.chat.completions.with_raw_response.create(model="claude", messages=ask, temperature=0)
    assert second.headers["x-llmplatform-cache"] == "hit"
    assert second.headers["x-llmplatform-model"] == "claude"
    completion = second.parse()
    assert completion.choices[0].message.content == "Cached words here."
    assert completion.usage is not None and completion.usage.prompt_tokens == 8
    assert len(received(anthropic)) == 1
