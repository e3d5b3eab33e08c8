"""The Responses API (`POST /v1/responses`) through the gateway, driven by the official `openai`
client: passed through to an OpenAI model's Responses API (the mock upstream), translated to
chat completions for a self-hosted OpenAI-compatible server (the mock's chat endpoint) and for
an Anthropic model (the Anthropic test server, which validates every request with the
`anthropic` package's types). Sync, async, both stream styles, function calling round trips,
the stateless refusals, the cache, and the audit record of each request."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest

from llmplatform.gateway.tokens import text_tokens
from llmplatform_testing import gateway as h
from llmplatform_testing.attacks import records_of

KEY = "llmp-test-responses-key"
GDPR_KEY = "llmp-test-responses-gdpr-key"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ANTHROPIC_TEXT = "Hello from the Anthropic test server."


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    alpha = gateway_world.mock("alpha")
    beta = gateway_world.mock("beta")
    anth = gateway_world.anthropic()
    local = h.model("local", beta, tier="efficient", serving={"image": "vllm/vllm-openai:v0.6.3"})
    del local["spec"]["endpoint"]  # self-hosted: the gateway is pointed at the mock below
    docs = [
        h.model("alpha", alpha, tier="standard", maxOutputTokens=500),
        local,
        h.anthropic_model("claude", anth, tier="premium"),
        # dearer than alpha, so ranked after it: the fallback when alpha fails
        h.anthropic_model(
            "claude-std",
            anth,
            tier="standard",
            pricing={"inputPerMillionTokens": 50, "outputPerMillionTokens": 100},
        ),
        h.policy(
            {"standard": ["alpha", "claude-std"], "efficient": ["local"], "premium": ["claude"]},
            cache={"enabled": True, "ttlSeconds": 60},
        ),
        *h.tenant("team-r", {"app": KEY}, ["standard", "efficient", "premium"]),
        *h.tenant("team-eu", {"app": GDPR_KEY}, ["standard"], compliance={"frameworks": ["gdpr"]}),
    ]
    gateway_world.gateway(docs, "--upstream-override", f"local={beta}/v1")
    return gateway_world


@pytest.fixture(autouse=True)
def fresh(world: dict[str, Any]) -> None:
    for name in ("alpha", "beta"):
        h.mock_config(world[name], tool_arguments=None, reply=None, fail_next=0, failure_mode="status")
    httpx.post(world["anthropic"] + "/_reset").raise_for_status()


def client(world: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=world["base"] + "/v1", api_key=KEY, max_retries=0)


def last_record(world: dict[str, Any], request_id: str) -> dict[str, Any]:
    found = records_of(world["log"], request_id)
    assert len(found) == 1, found
    return found[0]


def anthropic_received(world: dict[str, Any]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = httpx.get(world["anthropic"] + "/_received").json()
    assert [r.get("error") for r in seen if not r["valid"]] == []
    return seen


# -- passthrough to an OpenAI model's Responses API -------------------------------------------


def test_passthrough_create(world: dict[str, Any]) -> None:
    raw = client(world).responses.with_raw_response.create(
        model="alpha", input="Say hi", instructions="Be brief.", max_output_tokens=5, metadata={"app": "t"}
    )
    resp = raw.parse()
    assert resp.object == "response" and resp.status == "completed"
    assert resp.output_text == "this is a test reply "
    assert resp.usage is not None and resp.usage.output_tokens == 5
    assert resp.instructions == "Be brief." and resp.metadata == {"app": "t"} and resp.store is False
    stats = h.mock_stats(world["alpha"])
    assert stats["by_path"] == {"/v1/responses": 1}
    sent = stats["last_body"]
    assert sent["model"] == "alpha" and sent["store"] is False and sent["instructions"] == "Be brief."
    assert stats["last_headers"]["authorization"] == f"Bearer {h.UPSTREAM_KEY}"
    record = last_record(world, raw.headers["x-request-id"])
    assert (record["api"], record["endpoint"]) == ("responses", "chat")
    assert record["status"] == 200 and record["model"] == "alpha"
    assert (record["tokens_in"], record["tokens_out"]) == (resp.usage.input_tokens, 5)


def test_passthrough_items_images_and_json_schema(world: dict[str, Any]) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    items: Any = [
        {"role": "developer", "content": "Answer in JSON."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in this picture?"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
            ],
        },
    ]
    resp = client(world).responses.create(
        model="alpha",
        input=items,
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
        temperature=0.5,
        top_p=0.9,
        user="end-user-1",
    )
    assert resp.output_text
    sent = h.mock_stats(world["alpha"])["last_body"]
    assert sent["input"] == items and sent["text"]["format"]["schema"] == schema
    assert (sent["temperature"], sent["top_p"], sent["user"]) == (0.5, 0.9, "end-user-1")


def test_passthrough_stream_events(world: dict[str, Any]) -> None:
    with client(world).responses.with_streaming_response.create(
        model="alpha", input="hi", max_output_tokens=4, stream=True
    ) as raw:
        events = [json.loads(line[6:]) for line in raw.iter_lines() if line.startswith("data: ")]
        request_id = raw.headers["x-request-id"]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "this is a test "
    done = events[-1]["response"]
    assert done["output"][0]["content"][0]["text"] == "this is a test "
    assert done["usage"]["output_tokens"] == 4
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1
    record = last_record(world, request_id)
    assert record["status"] == 200 and record["tokens_out"] == 4 and record["api"] == "responses"


def test_stream_helper_and_create_stream(world: dict[str, Any]) -> None:
    with client(world).responses.stream(model="alpha", input="hi", max_output_tokens=3) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "this is a "
    kinds = [e.type for e in client(world).responses.create(model="alpha", input="hi", stream=True)]
    assert "response.output_text.delta" in kinds and kinds[-1] == "response.completed"


def test_async_client(world: dict[str, Any]) -> None:
    async def run() -> tuple[str, str]:
        c = openai.AsyncOpenAI(base_url=world["base"] + "/v1", api_key=KEY, max_retries=0)
        try:
            made = await c.responses.create(model="alpha", input="hi", max_output_tokens=2)
            async with c.responses.stream(model="alpha", input="hi", max_output_tokens=2) as stream:
                final = await stream.get_final_response()
            return made.output_text, final.output_text
        finally:
            await c.close()

    assert asyncio.run(run()) == ("this is ", "this is ")


def test_function_call_round_trip_passthrough(world: dict[str, Any]) -> None:
    h.mock_config(world["alpha"], tool_arguments='{"city": "Paris"}')
    c = client(world)
    first = c.responses.create(model="alpha", input="Weather in Paris?", tools=[WEATHER], tool_choice="auto")
    calls = [item for item in first.output if item.type == "function_call"]
    assert (
        len(calls) == 1
        and calls[0].name == "get_weather"
        and json.loads(calls[0].arguments) == {"city": "Paris"}
    )
    history: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "type": "function_call",
            "call_id": calls[0].call_id,
            "name": "get_weather",
            "arguments": calls[0].arguments,
        },
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp": 21}'},
    ]
    second = c.responses.create(model="alpha", input=history, tools=[WEATHER], max_output_tokens=3)
    assert second.output_text == "this is a "
    assert h.mock_stats(world["alpha"])["last_body"]["input"][2]["output"] == '{"temp": 21}'
    # streamed: the call's arguments arrive as deltas, assembled by the SDK's helper
    with c.responses.stream(model="alpha", input="Weather?", tools=[WEATHER]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == '{"city": "Paris"}'
    call = final.output[0]
    assert (
        call.type == "function_call" and call.arguments == '{"city": "Paris"}' and call.name == "get_weather"
    )


# -- translated: a self-hosted OpenAI-compatible server, Anthropic ------------------------------


def test_self_hosted_is_translated_to_chat(world: dict[str, Any]) -> None:
    items: Any = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "cold"},
    ]
    resp = client(world).responses.create(
        model="local",
        input=items,
        instructions="Be brief.",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=3,
        metadata={"k": "v"},
        text={"format": {"type": "json_object"}},
    )
    assert resp.output_text == "this is a " and resp.metadata == {"k": "v"}
    # the mock's chat answers always stop for length: an incomplete response, as OpenAI says it
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage is not None and resp.usage.output_tokens == 3
    stats = h.mock_stats(world["beta"])
    assert stats["by_path"] == {"/v1/chat/completions": 1}
    sent = stats["last_body"]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "cold"},
    ]
    assert sent["max_tokens"] == 3 and sent["response_format"] == {"type": "json_object"}
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["tools"][0]["function"]["name"] == "get_weather" and "metadata" not in sent
    events = list(client(world).responses.create(model="local", input="hi", max_output_tokens=4, stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    last = events[-1]
    assert text == "this is a test " and last.type == "response.incomplete"
    assert last.response.usage is not None and last.response.usage.output_tokens == 4


def test_anthropic_text_stream_and_tools(world: dict[str, Any]) -> None:
    c = client(world)
    resp = c.responses.create(model="claude", input="hello", instructions="Be nice.", max_output_tokens=50)
    assert resp.output_text == ANTHROPIC_TEXT
    sent = anthropic_received(world)[-1]["body"]
    assert sent["system"] == "Be nice." and sent["max_tokens"] == 50
    with c.responses.stream(model="claude", input="hello") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == ANTHROPIC_TEXT
    assert final.usage is not None and final.usage.output_tokens > 0
    # function calling round trip: tool_use comes back as a function_call item, and its
    # function_call_output goes up as a tool_result
    script = {
        "replies": [
            {"tool_use": {"id": "toolu_1", "name": "get_weather", "input": {"city": "Rome"}}},
            {"text": "Sunny."},
        ]
    }
    httpx.post(world["anthropic"] + "/_script", json=script).raise_for_status()
    first = c.responses.create(model="claude", input="Weather in Rome?", tools=[WEATHER])
    call = first.output[0]
    assert (
        call.type == "function_call"
        and call.call_id == "toolu_1"
        and json.loads(call.arguments) == {"city": "Rome"}
    )
    # the SDK's agent pattern: the previous output items go back as input, as they are
    history: Any = [
        {"role": "user", "content": "Weather in Rome?"},
        *first.output,
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 25C"},
    ]
    second = c.responses.create(model="claude", input=history, tools=[WEATHER])
    assert second.output_text == "Sunny."
    blocks = anthropic_received(world)[-1]["body"]["messages"][-1]["content"]
    assert blocks[0]["type"] == "tool_result" and blocks[0]["tool_use_id"] == "toolu_1"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_fallback_from_passthrough_to_a_translated_model(world: dict[str, Any], stream: bool) -> None:
    """One request, two upstream APIs: alpha's Responses API fails with a 503, and the next
    candidate, an Anthropic model, gets the same request translated."""
    h.mock_config(world["alpha"], fail_next=1, failure_status=503)
    c = client(world)
    if stream:
        with c.responses.with_streaming_response.create(model="standard", input="hi", stream=True) as raw:
            headers = raw.headers
            events = [json.loads(line[6:]) for line in raw.iter_lines() if line.startswith("data: ")]
        text = events[-1]["response"]["output"][0]["content"][0]["text"]
        assert events[-1]["type"] == "response.completed"
    else:
        made = c.responses.with_raw_response.create(model="standard", input="hi")
        headers, text = made.headers, made.parse().output_text
    assert text == ANTHROPIC_TEXT
    assert (headers["x-llmplatform-model"], headers["x-llmplatform-fallback-level"]) == ("claude-std", "1")
    assert h.mock_stats(world["alpha"])["by_path"] == {"/v1/responses": 1}
    assert anthropic_received(world)[-1]["body"]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]
    h.mock_config(world["alpha"], failure_status=500)


# -- refusals and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"store": True}, "store"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": None}, "input"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"text": {"format": {"type": "json_schema"}}}, "text.format"),
        ({"metadata": {"a": 1}}, "metadata"),
    ],
)
def test_refused_with_a_clear_400(world: dict[str, Any], extra: dict[str, Any], param: str) -> None:
    before = h.mock_stats(world["alpha"])["requests"]
    body = {"model": "alpha", "input": "hi", **extra}
    r = httpx.post(world["base"] + "/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert h.mock_stats(world["alpha"])["requests"] == before
    record = last_record(world, r.headers["x-request-id"])
    assert (record["status"], record["api"], record["error_code"]) == (
        400,
        "responses",
        "invalid_request",
    )
    with pytest.raises(openai.BadRequestError):
        client(world).responses.create(**body)


def test_content_a_chat_model_cannot_take_is_a_400(world: dict[str, Any]) -> None:
    """A file part passes through to an OpenAI model, but cannot be translated for chat."""
    part = {"type": "input_file", "file_id": "file-1"}
    body: dict[str, Any] = {"model": "local", "input": [{"role": "user", "content": [part]}]}
    r = httpx.post(world["base"] + "/v1/responses", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input[0].content[0]", r.text
    assert h.mock_stats(world["beta"])["requests"] == 0


def test_metrics_label_the_api(world: dict[str, Any]) -> None:
    labels = {"api": "responses", "endpoint": "chat", "status": "200"}
    before = h.metric(world["base"], "llmplatform_requests_total", **labels)
    client(world).responses.create(model="alpha", input="hi", max_output_tokens=1)
    after = h.metric(world["base"], "llmplatform_requests_total", **labels)
    assert after == before + 1


def test_governance_applies(world: dict[str, Any]) -> None:
    """Data residency: a gdpr tenant's request has no EU model to go to, so it is refused
    before any upstream is called; the classification header is set as on chat."""
    r = httpx.post(
        world["base"] + "/v1/responses",
        json={"model": "standard", "input": "hi"},
        headers={"Authorization": f"Bearer {GDPR_KEY}"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "data_residency", r.text
    assert h.mock_stats(world["alpha"])["requests"] == 0
    ok = client(world).responses.with_raw_response.create(model="alpha", input="hi", max_output_tokens=1)
    assert ok.headers["x-llmplatform-data-classification"] == "public"


def test_auth_and_unknown_model(world: dict[str, Any]) -> None:
    bad = openai.OpenAI(base_url=world["base"] + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.responses.create(model="alpha", input="hi")
    with pytest.raises(openai.NotFoundError):
        client(world).responses.create(model="no-such-model", input="hi")


def test_upstream_drop_mid_stream_is_an_in_band_error(world: dict[str, Any]) -> None:
    h.mock_config(world["alpha"], fail_next=1, failure_mode="drop")
    with client(world).responses.with_streaming_response.create(
        model="alpha", input="hi", max_output_tokens=8, stream=True
    ) as raw:
        events = [json.loads(line[6:]) for line in raw.iter_lines() if line.startswith("data: ")]
        request_id = raw.headers["x-request-id"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"]
    assert events[-2]["code"] == "upstream_stream_error"
    assert events[-1]["response"]["status"] == "failed"
    relayed = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(relayed) == "this is a test "  # the mock drops the connection half-way
    record = last_record(world, request_id)
    # charged the gateway's own count of what was relayed (no usage came)
    assert record["status"] == 502 and record["tokens_out"] == sum(max(1, text_tokens(d)) for d in relayed)


def test_cache_hit_json_and_stream(world: dict[str, Any]) -> None:
    c = client(world)
    body: dict[str, Any] = {"model": "alpha", "input": "cache me", "temperature": 0, "max_output_tokens": 3}
    first = c.responses.with_raw_response.create(**body)
    second = c.responses.with_raw_response.create(**body)
    assert first.headers["x-llmplatform-cache"] == "miss" and second.headers["x-llmplatform-cache"] == "hit"
    assert second.parse().output_text == first.parse().output_text == "this is a "
    assert h.mock_stats(world["alpha"])["requests"] == 1
    with c.responses.stream(**body) as stream:
        final = stream.get_final_response()
    assert final.output_text == "this is a "
    assert h.mock_stats(world["alpha"])["requests"] == 1
    time.sleep(0.3)
    record = records_of(world["log"], second.headers["x-request-id"])[0]
    assert record["cache"] == "hit" and record["api"] == "responses"
