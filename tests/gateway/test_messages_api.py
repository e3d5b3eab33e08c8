"""The Anthropic Messages API inbound (`POST /v1/messages`), driven by the official `anthropic`
client: sync, async, the streaming helpers and a tool use round trip.

Two upstreams stand behind it: the Anthropic test server (llmplatform_testing.anthropic_server,
which validates every request with the `anthropic` package's own types: a translation that
leaks a field fails there) for the `claude` model, and the OpenAI mock upstream for `gpt`. What
each upstream received is checked at the upstream, and the answers are parsed by the SDK into
its own types, so a wrong shape in either direction fails.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from llmplatform_testing import attacks as bh
from llmplatform_testing import gateway as h

KEY = "llmp-test-messages-key"
SLOW_KEY = "llmp-test-messages-slow-key"
DEFAULT_TEXT = "Hello from the Anthropic test server."
PRICING = {"inputPerMillionTokens": 3, "outputPerMillionTokens": 15}


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    anth_url = gateway_world.anthropic()
    gpt_url = gateway_world.mock("gpt")
    docs = [
        h.anthropic_model("claude", anth_url, tier="premium", maxOutputTokens=1000, pricing=PRICING),
        h.model("gpt", gpt_url, tier="standard"),
        h.model("gpt-fallback", gpt_url, tier="premium"),
        h.policy(
            {"standard": ["gpt"], "premium": ["claude", "gpt-fallback"]},
            dataGovernance={"piiRedaction": True, "outputScanning": True},
            cache={"enabled": True, "ttlSeconds": 60},
        ),
        *h.tenant("team-m", {"alice": KEY}, ["standard", "premium"]),
        *h.tenant("team-slow", {"bob": SLOW_KEY}, ["standard"], limits={"requestsPerMinute": 1}),
    ]
    gateway_world.gateway(docs)
    return gateway_world


@pytest.fixture()
def upstreams(world: h.World) -> Iterator[h.World]:
    """Both upstreams emptied before the test; after it, every request the gateway sent the
    Anthropic test server must have been valid Messages API."""
    httpx.post(world["anthropic"] + "/_reset").raise_for_status()
    h.mock_config(world["gpt"], reply=None, reply_chunk_chars=5, fail_next=0)
    yield world
    assert [r.get("error") for r in received(world) if not r["valid"]] == []


def client(world: h.World, key: str = KEY, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world["base"], api_key=key, max_retries=0, **kwargs)


def script(world: h.World, *replies: dict[str, Any]) -> None:
    httpx.post(world["anthropic"] + "/_script", json={"replies": list(replies)}).raise_for_status()


def received(world: h.World) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = httpx.get(world["anthropic"] + "/_received").json()
    return seen


def anthropic_body(world: h.World) -> dict[str, Any]:
    seen = received(world)
    assert seen and seen[-1]["valid"], seen[-1:] or "nothing received"
    body: dict[str, Any] = seen[-1]["body"]
    return body


def gpt_body(world: h.World) -> dict[str, Any]:
    body: dict[str, Any] = h.mock_stats(world["gpt"])["last_body"]
    return body


WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


# -- Anthropic models: the request goes up as Messages again ---------------------------------


def test_create_on_an_anthropic_model_is_passed_through(upstreams: h.World) -> None:
    script(upstreams, {"text": "Paris.", "usage": {"input_tokens": 120, "output_tokens": 4}})
    system: Any = [{"type": "text", "text": "Answer in one word."}, {"type": "text", "text": "Be exact."}]
    turns: Any = [
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Rome."}]},
        {"role": "user", "content": [{"type": "text", "text": "And of France?"}]},
    ]
    raw = client(upstreams).messages.with_raw_response.create(
        model="claude",
        max_tokens=50,
        system=system,
        messages=turns,
        stop_sequences=["END"],
        metadata={"user_id": "user-42"},
        thinking={"type": "disabled"},
        extra_body={"temperature": 0.3},  # older clients send it; the current API has none
    )
    message = raw.parse()
    assert isinstance(message, anthropic.types.Message)
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Paris."  # type: ignore[union-attr]
    assert message.role == "assistant" and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (120, 4)
    assert raw.headers["x-llmplatform-model"] == "claude"
    assert raw.headers["request-id"] == raw.headers["x-request-id"]

    # passed through: the client's Messages request with the routed model's upstream name in
    # it, and what a round trip through chat would have dropped (thinking) or reshaped (the
    # system blocks, which it joins; string content, which it turns into blocks); temperature
    # is not sent (the current Messages API has none, and the test server refuses it)
    body = anthropic_body(upstreams)
    assert body == {
        "model": "claude-test-1",
        "max_tokens": 50,
        "system": system,
        "messages": turns,
        "stop_sequences": ["END"],
        "thinking": {"type": "disabled"},
        # the end-user id goes up as an opaque hash, whichever API it came in by
        "metadata": {"user_id": hashlib.sha256(b"user-42").hexdigest()},
    }


def test_the_stop_sequence_that_ended_the_answer_is_relayed(upstreams: h.World) -> None:
    stopped = {"text": "one two", "stop_reason": "stop_sequence", "stop_sequence": "THREE"}
    script(upstreams, stopped, stopped)
    ask: Any = {
        "model": "claude",
        "max_tokens": 20,
        "stop_sequences": ["THREE"],
        "messages": [{"role": "user", "content": "count"}],
    }
    whole = client(upstreams).messages.create(**ask)
    with client(upstreams).messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    for message in (whole, streamed):
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "THREE")
        assert message.content[0].text == "one two"  # type: ignore[union-attr]


def test_async_client_and_bearer_auth(upstreams: h.World) -> None:
    async def go() -> tuple[anthropic.types.Message, anthropic.types.Message]:
        by_key = anthropic.AsyncAnthropic(base_url=upstreams["base"], api_key=KEY, max_retries=0)
        by_token = anthropic.AsyncAnthropic(base_url=upstreams["base"], auth_token=KEY, max_retries=0)
        hello: Any = [{"role": "user", "content": "hi"}]
        return await asyncio.gather(
            by_key.messages.create(model="claude", max_tokens=20, messages=hello),
            by_token.messages.create(model="claude", max_tokens=20, messages=hello),
        )

    for message in asyncio.run(go()):
        assert message.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]
    sent = received(upstreams)
    assert len(sent) == 2
    for r in sent:  # the provider key goes up, never the tenant's
        assert r["headers"]["x-api-key"] == h.UPSTREAM_KEY and "authorization" not in r["headers"]


def test_stream_helper_on_an_anthropic_model(upstreams: h.World) -> None:
    script(upstreams, {"chunks": ["Bon", "jour ", "à tous."], "usage": {"input_tokens": 30}})
    with client(upstreams).messages.stream(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": "Say hello in French"}]
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    # output scanning may hold text back across deltas (a value split between them), never lose it
    assert "".join(texts) == "Bonjour à tous." and len(texts) >= 2
    assert final.content[0].text == "Bonjour à tous."  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 30 and final.usage.output_tokens > 0
    assert anthropic_body(upstreams)["stream"] is True


def test_raw_stream_event_types(upstreams: h.World) -> None:
    events = client(upstreams).messages.create(
        model="claude", max_tokens=100, messages=[{"role": "user", "content": "Stream please"}], stream=True
    )
    kinds = [e.type for e in events]
    words = len(DEFAULT_TEXT.split(" "))
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * words,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_tool_use_round_trip(upstreams: h.World) -> None:
    call = {"id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
    script(upstreams, {"text": "Let me check.", "tool_use": call}, {"text": "Sunny, 21 C."})
    c = client(upstreams)
    question: Any = [{"role": "user", "content": "Weather in Paris?"}]
    first = c.messages.create(
        model="claude", max_tokens=200, messages=question, tools=[WEATHER], tool_choice={"type": "any"}
    )
    assert first.stop_reason == "tool_use"
    assert [b.type for b in first.content] == ["text", "tool_use"]
    use = first.content[1]
    assert isinstance(use, anthropic.types.ToolUseBlock)
    assert (use.id, use.name, use.input) == ("toolu_01", "get_weather", {"city": "Paris"})
    up = anthropic_body(upstreams)
    assert up["tools"] == [WEATHER] and up["tool_choice"] == {"type": "any"}

    result: Any = {
        "type": "tool_result",
        "tool_use_id": "toolu_01",
        "content": [{"type": "text", "text": "21 C"}, {"type": "text", "text": "sunny"}],
        "is_error": False,
    }
    second = c.messages.create(
        model="claude",
        max_tokens=200,
        tools=[WEATHER],
        messages=[
            *question,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [result]},
        ],
    )
    assert second.content[0].text == "Sunny, 21 C."  # type: ignore[union-attr]
    turns = anthropic_body(upstreams)["messages"]
    assert turns[1]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    # passed through as sent: a translation through chat would join the blocks and lose is_error
    assert turns[2]["content"] == [result]


def test_streamed_tool_use_accumulates_its_input(upstreams: h.World) -> None:
    call = {"id": "toolu_02", "name": "get_weather", "input": {"city": "Lyon", "days": [1, 2, 3]}}
    script(upstreams, {"tool_use": call})
    with client(upstreams).messages.stream(
        model="claude", max_tokens=200, tools=[WEATHER], messages=[{"role": "user", "content": "Lyon?"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    use = final.content[-1]
    assert isinstance(use, anthropic.types.ToolUseBlock)
    assert (use.id, use.input) == ("toolu_02", call["input"])


def test_images_go_up_as_image_blocks(upstreams: h.World) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
    client(upstreams).messages.create(
        model="claude",
        max_tokens=20,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                    {"type": "text", "text": "What is this?", "cache_control": {"type": "ephemeral"}},
                ],
            }
        ],
    )
    blocks = anthropic_body(upstreams)["messages"][0]["content"]
    assert blocks == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What is this?"},
    ]


# -- OpenAI-compatible models: translated -----------------------------------------------------


def test_create_on_an_openai_model(upstreams: h.World) -> None:
    message = client(upstreams).messages.create(
        model="gpt",
        max_tokens=5,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello"}],
        stop_sequences=["END"],
        extra_body={"temperature": 0.5},  # older clients send it; the current SDK has no argument
    )
    assert message.content[0].text == "this is a test reply "  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"  # the mock generated max_tokens tokens
    assert message.usage.output_tokens == 5 and message.usage.input_tokens > 0
    body = gpt_body(upstreams)
    assert body["model"] == "gpt"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]
    assert (body["max_tokens"], body["stop"], body["temperature"]) == (5, ["END"], 0.5)


def test_stream_helper_on_an_openai_model(upstreams: h.World) -> None:
    with client(upstreams).messages.stream(
        model="gpt", max_tokens=6, messages=[{"role": "user", "content": "stream me"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "this is a test reply from "
    assert final.content[0].text == text  # type: ignore[union-attr]
    assert (final.stop_reason, final.usage.output_tokens) == ("max_tokens", 6)


def test_tool_history_is_translated_for_an_openai_model(upstreams: h.World) -> None:
    client(upstreams).messages.create(
        model="gpt",
        max_tokens=5,
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "call_1",
                        "content": [{"type": "text", "text": "21 C"}],
                    },
                    {"type": "text", "text": "Thanks, and tomorrow?"},
                ],
            },
        ],
    )
    body = gpt_body(upstreams)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city",
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "21 C"}]},
        {"role": "user", "content": [{"type": "text", "text": "Thanks, and tomorrow?"}]},
    ]


# -- errors, in Anthropic's shape ---------------------------------------------------------------


def test_errors_have_anthropics_shape_and_status(upstreams: h.World) -> None:
    hello: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.AuthenticationError) as auth:
        client(upstreams, key="llmp-wrong").messages.create(model="gpt", max_tokens=5, messages=hello)
    assert auth.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": auth.value.body["error"]["message"]},
    }  # type: ignore[index]

    missing = httpx.post(
        upstreams["base"] + "/v1/messages",
        headers={"x-api-key": KEY},
        json={"model": "gpt", "messages": hello},
    )
    assert missing.status_code == 400
    assert missing.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "max_tokens is required and must be a positive integer",
        },
    }

    with pytest.raises(anthropic.BadRequestError) as document:
        client(upstreams).messages.create(
            model="gpt",
            max_tokens=5,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "x"},
                        }
                    ],
                }
            ],
        )
    assert "'document' is not supported" in document.value.message

    with pytest.raises(anthropic.BadRequestError) as thinking:
        client(upstreams).messages.create(
            model="gpt", max_tokens=2000, messages=hello, thinking={"type": "enabled", "budget_tokens": 1024}
        )
    assert "thinking" in thinking.value.message

    bare = httpx.post(upstreams["base"] + "/v1/messages", json={"model": "gpt"})
    assert bare.status_code == 401
    assert bare.json()["error"]["type"] == "authentication_error"
    assert "x-api-key" in bare.json()["error"]["message"]

    wrong_method = httpx.get(upstreams["base"] + "/v1/messages", headers={"x-api-key": KEY})
    assert wrong_method.status_code == 405 and wrong_method.json()["type"] == "error"


def test_rate_limit_is_a_rate_limit_error_with_retry_after(upstreams: h.World) -> None:
    left = 60 - time.time() % 60  # calendar-minute windows: both requests in one
    if left < 15:
        time.sleep(left + 0.05)
    hello: Any = [{"role": "user", "content": "hi"}]
    c = client(upstreams, key=SLOW_KEY)
    c.messages.create(model="gpt", max_tokens=5, messages=hello)
    with pytest.raises(anthropic.RateLimitError) as limited:
        c.messages.create(model="gpt", max_tokens=5, messages=hello)
    assert limited.value.status_code == 429
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(limited.value.response.headers["retry-after"]) >= 1


def test_upstream_errors_map_to_anthropic_types(upstreams: h.World) -> None:
    hello: Any = [{"role": "user", "content": "hi there"}]
    script(
        upstreams,
        {"error": {"status": 400, "type": "invalid_request_error", "message": "prompt is too long"}},
    )
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(upstreams).messages.create(model="claude", max_tokens=5, messages=hello)
    assert bad.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long"},
    }


def test_an_overloaded_anthropic_model_falls_back_and_a_failed_fallback_is_overloaded(
    upstreams: h.World,
) -> None:
    hello: Any = [{"role": "user", "content": "fall back"}]
    overloaded = {"error": {"status": 529, "type": "overloaded_error", "message": "busy"}}
    script(upstreams, overloaded)
    raw = client(upstreams).messages.with_raw_response.create(model="claude", max_tokens=3, messages=hello)
    assert raw.headers["x-llmplatform-model"] == "gpt-fallback"
    assert raw.headers["x-llmplatform-fallback-level"] == "1"
    assert raw.parse().content[0].text == "this is a "  # type: ignore[union-attr]
    # one request, two APIs: passed through to the Anthropic model, translated for the fallback
    assert anthropic_body(upstreams)["messages"] == hello
    assert gpt_body(upstreams)["messages"] == [{"role": "user", "content": "fall back"}]
    assert gpt_body(upstreams)["model"] == "gpt-fallback" and "stream_options" not in gpt_body(upstreams)
    # both candidates fail: the gateway's 503 is Anthropic's overloaded_error
    script(upstreams, overloaded)
    h.mock_config(upstreams["gpt"], fail_next=1, failure_status=503)
    with pytest.raises(anthropic.InternalServerError) as busy:
        client(upstreams).messages.create(model="claude", max_tokens=3, messages=hello)
    assert busy.value.status_code == 503
    assert busy.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_an_error_mid_stream_is_an_error_event(upstreams: h.World) -> None:
    script(
        upstreams, {"text": "one two three", "stream_error": {"type": "overloaded_error", "after_text": True}}
    )
    with (
        pytest.raises(anthropic.APIStatusError) as broken,
        client(upstreams).messages.stream(
            model="claude", max_tokens=50, messages=[{"role": "user", "content": "break"}]
        ) as stream,
    ):
        list(stream.text_stream)
    # the provider's own error type survives the two translations
    assert broken.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


# -- platform rules ---------------------------------------------------------------------------------


def test_count_tokens_is_the_gateways_estimate(upstreams: h.World) -> None:
    c = client(upstreams)
    short = c.messages.count_tokens(model="gpt", messages=[{"role": "user", "content": "hi"}])
    longer = c.messages.count_tokens(
        model="gpt",
        system="You are helpful. " * 20,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert 0 < short.input_tokens < longer.input_tokens
    assert h.mock_stats(upstreams["gpt"])["requests"] == 0 and received(upstreams) == []
    with pytest.raises(anthropic.AuthenticationError):
        client(upstreams, key="llmp-wrong").messages.count_tokens(
            model="gpt", messages=[{"role": "user", "content": "hi"}]
        )


def test_pii_in_every_forwarded_string_is_redacted(upstreams: h.World) -> None:
    email, other = "jane.doe@example.com", "bob.smith@example.org"
    tool = {**WEATHER, "description": f"Weather; owner {other}"}
    client(upstreams).messages.create(
        model="claude",
        max_tokens=20,
        system=[{"type": "text", "text": f"Escalate to {email}."}],
        tools=[tool],
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": email}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": f"mail {other}"}],
            },
        ],
    )
    sent = json.dumps(anthropic_body(upstreams))
    assert email not in sent and other not in sent
    assert sent.count("[EMAIL_REDACTED]") == 4, sent


def test_output_scanning_redacts_answers_and_streams(upstreams: h.World) -> None:
    h.mock_config(upstreams["gpt"], reply="write to jane.doe@example.com today", reply_chunk_chars=4)
    c = client(upstreams)
    ask: Any = {"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "who?"}]}
    whole = c.messages.create(**ask).content[0].text  # type: ignore[union-attr]
    with c.messages.stream(**ask) as stream:
        streamed = "".join(stream.text_stream)
    for text in (whole, streamed):
        assert "jane.doe" not in text and "[EMAIL_REDACTED]" in text, text


def test_cache_hit_replays_json_and_stream_translated(upstreams: h.World) -> None:
    c = client(upstreams)
    ask: Any = {
        "model": "gpt",
        "max_tokens": 4,
        "messages": [{"role": "user", "content": "cache me please"}],
        "extra_body": {"temperature": 0},  # the policy caches temperature-0 requests only
    }
    first = c.messages.with_raw_response.create(**ask)
    again = c.messages.with_raw_response.create(**ask)
    assert (first.headers["x-llmplatform-cache"], again.headers["x-llmplatform-cache"]) == ("miss", "hit")
    assert again.parse().content[0].text == first.parse().content[0].text  # type: ignore[union-attr]
    with c.messages.stream(**ask) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == first.parse().content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == 4
    assert h.mock_stats(upstreams["gpt"])["requests"] == 1


def test_one_audit_record_per_request_with_usage(upstreams: h.World) -> None:
    script(upstreams, {"text": "audited", "usage": {"input_tokens": 11, "output_tokens": 3}})
    raw = client(upstreams).messages.with_raw_response.create(
        model="claude", max_tokens=10, messages=[{"role": "user", "content": "audit me"}]
    )
    labels = {"tenant": "team-m/team-m", "model": "claude", "endpoint": "chat", "api": "messages"}
    labels["status"] = "200"
    assert h.metric(upstreams["base"], "llmplatform_requests_total", **labels) > 0
    records = bh.records_of(upstreams["log"], raw.headers["x-request-id"])
    assert len(records) == 1
    record = records[0]
    assert (record["status"], record["model"], record["tokens_in"], record["tokens_out"]) == (
        200,
        "claude",
        11,
        3,
    )
    # the client's API apart from the form it ran as, so an SRE can tell Messages traffic apart
    assert (record["api"], record["endpoint"]) == ("messages", "chat")
    assert record["response_sha256"] == hashlib.sha256(raw.http_response.content).hexdigest()
