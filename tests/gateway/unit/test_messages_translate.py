"""The Messages API inbound translation (messagesapi/), as pure functions.

The round trip Messages -> chat -> Messages (what an Anthropic model receives) is checked
against the original and against the official `anthropic` package's types with the strict
validator of the Anthropic test server, for generated conversations (hypothesis); streams are
rebuilt with the `anthropic` SDK's own accumulator, whatever the write boundaries.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.messagesapi import request, response
from llmplatform.gateway.providers import anthropic as provider
from llmplatform_testing import anthropic_server as server

STRICT = server.strict_adapter()
EVENT = TypeAdapter[Any](RawMessageStreamEvent)

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
names = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Messages request: alternating turns, tool uses answered by tool results."""
    turns: list[dict[str, Any]] = []
    pending: list[str] = []
    for i in range(draw(st.integers(0, 3))):
        user: list[dict[str, Any]] = [
            {"type": "tool_result", "tool_use_id": t, "content": draw(text)} for t in pending
        ]
        user.append({"type": "text", "text": draw(text)})
        turns.append({"role": "user", "content": user})
        assistant: list[dict[str, Any]] = [{"type": "text", "text": draw(text)}]
        pending = [f"toolu_{i}_{j}" for j in range(draw(st.integers(0, 2)))]
        assistant += [
            {"type": "tool_use", "id": t, "name": draw(names), "input": {"q": draw(text)}} for t in pending
        ]
        turns.append({"role": "assistant", "content": assistant})
    last: list[dict[str, Any]] = [
        {"type": "tool_result", "tool_use_id": t, "content": draw(text)} for t in pending
    ]
    turns.append({"role": "user", "content": [*last, {"type": "text", "text": draw(text)}]})
    body: dict[str, Any] = {"model": "m", "max_tokens": draw(st.integers(1, 5000)), "messages": turns}
    if draw(st.booleans()):
        body["system"] = draw(text)
    if draw(st.booleans()):
        body["stop_sequences"] = draw(st.lists(text, min_size=1, max_size=3))
    if draw(st.booleans()):
        schema = {"type": "object", "properties": {"q": {"type": "string"}}}
        body["tools"] = [{"name": draw(names), "description": draw(text), "input_schema": schema}]
        body["tool_choice"] = draw(st.sampled_from([{"type": "any"}, {"type": "auto"}]))
    return body


@settings(max_examples=200, deadline=None)
@given(conversations())
def test_an_anthropic_model_receives_the_request_it_was_sent(body: dict[str, Any]) -> None:
    chat = request.to_chat(body)
    up = provider.to_messages_request(chat, "m", None)
    server.force(STRICT.validate_python(up))
    assert up == body


def test_round_trip_differences_are_the_documented_ones() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 10,
        "system": [
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "b"},
        ],
        "metadata": {"user_id": "u-1"},
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    }
    up = provider.to_messages_request(request.to_chat(body), "m", None)
    server.force(STRICT.validate_python(up))
    assert up["system"] == "a\nb"  # blocks joined, cache_control dropped
    assert up["metadata"] == {"user_id": hashlib.sha256(b"u-1").hexdigest()}
    assert up["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert up["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@settings(max_examples=200, deadline=None)
@given(conversations())
def test_a_passed_through_request_is_the_one_sent_with_the_upstream_name(body: dict[str, Any]) -> None:
    request.to_chat(body)  # checked as on arrival
    up = request.upstream_body(body, "claude-upstream-1")
    server.force(STRICT.validate_python(up))
    assert up == {**body, "model": "claude-upstream-1"}


def test_passed_through_differences_are_the_documented_ones() -> None:
    schema = {"type": "object", "properties": {"cache_control": {"type": "string"}}}
    body: dict[str, Any] = {
        "model": "claude",
        "max_tokens": 10,
        "temperature": 0,
        "top_p": 0.5,
        "cache_control": {"type": "ephemeral"},
        "system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "u-1"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "citations": None}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"cache_control": "kept"}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "is_error": True,
                        "content": [{"type": "text", "text": "no", "cache_control": {"type": "ephemeral"}}],
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
        "tools": [{"name": "f", "input_schema": schema, "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "stop_sequences": None,
    }
    request.to_chat(body)
    up = request.upstream_body(body, "claude-1")
    server.force(STRICT.validate_python(up))
    assert "cache_control" not in json.dumps({k: v for k, v in up.items() if k not in ("messages", "tools")})
    assert up == {
        "model": "claude-1",
        "max_tokens": 10,
        "system": [{"type": "text", "text": "a"}],
        "metadata": {"user_id": hashlib.sha256(b"u-1").hexdigest()},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            # a tool's own input and schema are the client's data, not request keys
            body["messages"][1],
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "is_error": True,
                        "content": [{"type": "text", "text": "no"}],
                    }
                ],
            },
        ],
        "tools": [{"name": "f", "input_schema": schema}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    }
    assert body["temperature"] == 0 and body["cache_control"]  # the client's body is not changed


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"top_k": 5}, "'top_k'"),
        ({"service_tier": "auto"}, "'service_tier'"),
        ({"inference_geo": "us"}, "'inference_geo'"),
        ({"container": "c-1"}, "'container'"),
        ({"speed": "fast"}, "'speed'"),
        ({"n": 2}, "'n'"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "custom tools"),
        ({"tool_choice": {"type": "any"}}, "tool_choice needs tools"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"output_config": {"effort": "high"}}, "'effort'"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"metadata": {"user_id": 5}}, "metadata.user_id"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/bmp", "data": "x"},
                            }
                        ],
                    }
                ]
            },
            "media_type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image"}]}
                        ],
                    }
                ]
            },
            "only text blocks",
        ),
    ],
)
def test_what_cannot_be_carried_is_refused_by_name(body: dict[str, Any], named: str) -> None:
    full = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(GatewayError) as refused:
        request.to_chat(full)
    assert refused.value.status == 400 and named in refused.value.message


def test_nulls_and_cache_control_are_no_fields() -> None:
    chat = request.to_chat(
        {
            "model": "m",
            "max_tokens": 5,
            "cache_control": {"type": "ephemeral"},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "hi", "citations": None}]},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}, "caller": None}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
            ],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "none"},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
            "stream": True,
        }
    )
    assert chat["tool_choice"] == "none" and chat["stream_options"] == {"include_usage": True}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}},
    }


# -- answers --------------------------------------------------------------------------------------


def test_a_chat_completion_becomes_a_message() -> None:
    completion = {
        "id": "chatcmpl-1",
        "model": "gpt",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "content": "Checking.",
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}},
                        {"id": "c2", "function": {"name": "g", "arguments": "not json"}},
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 20},
        },
    }
    message = json.loads(response.json_answer(200, json.dumps(completion).encode()))
    assert message["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "c2", "name": "g", "input": {"_arguments": "not json"}},
    ]
    assert message["stop_reason"] == "tool_use"
    assert message["usage"] == {"input_tokens": 30, "output_tokens": 7, "cache_read_input_tokens": 20}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            401,
            {"error": {"message": "Incorrect API key", "type": "authentication_error"}},
            "authentication_error",
        ),
        (403, {"error": {"message": "no"}}, "permission_error"),
        (404, {"error": {"message": "no model"}}, "not_found_error"),
        (413, {"error": {"message": "big"}}, "request_too_large"),
        (429, {"error": {"message": "slow down"}}, "rate_limit_error"),
        (502, {"error": {"message": "bad upstream"}}, "api_error"),
        (503, {"error": {"message": "busy"}}, "overloaded_error"),
        (504, {"error": {"message": "late"}}, "timeout_error"),
        (400, {"error": {"message": "from claude", "code": "billing_error"}}, "billing_error"),
    ],
)
def test_errors_take_anthropics_types(status: int, body: dict[str, Any], kind: str) -> None:
    out = json.loads(response.error(status, json.dumps(body).encode()))
    assert out == {"type": "error", "error": {"type": kind, "message": body["error"]["message"]}}


# -- streams ---------------------------------------------------------------------------------


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + json.dumps({"id": "c", "model": "gpt", "choices": choices, **extra}).encode() + b"\n\n"


TOOL_STREAM = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me "}),
    chunk({"content": "see."}),
    chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}),
    chunk(
        {
            "tool_calls": [
                {"index": 1, "id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"b"'}}
            ]
        }
    ),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),  # interleaved
    chunk({"tool_calls": [{"index": 1, "function": {"arguments": ": 2}"}}]}),
    chunk({}, "tool_calls"),
    chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 12}),
    b"data: [DONE]\n\n",
]


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for frame in raw.split(b"\n\n"):
        lines = dict(line.split(b": ", 1) for line in frame.splitlines() if line)
        if lines:
            payload = json.loads(lines[b"data"])
            assert payload["type"] == lines[b"event"].decode()
            out.append(payload)
    return out


def accumulated(raw: bytes) -> Any:
    snapshot, bufs = None, {}
    for payload in events(raw):
        if payload["type"] == "ping":  # the SDK skips pings before accumulating
            continue
        snapshot = accumulate_event(
            event=EVENT.validate_python(payload), current_snapshot=snapshot, json_bufs=bufs
        )
    return snapshot


def test_a_chunk_stream_becomes_the_message_the_sdk_rebuilds() -> None:
    raw = response.StreamTranslator().feed(b"".join(TOOL_STREAM))
    kinds = [e["type"] for e in events(raw)]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    message = accumulated(raw)
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Let me see."
    assert (message.content[1].id, message.content[1].input) == ("c1", {"a": 1})
    assert (message.content[2].id, message.content[2].input) == ("c2", {"b": 2})
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (9, 12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=60))
def test_write_boundaries_do_not_matter(cuts: list[int]) -> None:
    data = b"".join(TOOL_STREAM).replace(b"\n\n", b"\r\n\r\n", 3)  # line ends an upstream may use
    whole = response.StreamTranslator().feed(data)
    translator, out, at = response.StreamTranslator(), b"", 0
    for n in cuts:
        out += translator.feed(data[at : at + n])
        at += n
    out += translator.feed(data[at:])
    assert out == whole


def test_an_id_repeated_in_every_delta_is_one_call() -> None:
    """vLLM-style servers send the call's id with each arguments fragment."""
    call = {"index": 0, "id": "c1", "type": "function"}
    raw = response.StreamTranslator().feed(
        chunk({"tool_calls": [{**call, "function": {"name": "f", "arguments": '{"a"'}}]})
        + chunk({"tool_calls": [{**call, "function": {"arguments": ": 1}"}}]})
        + chunk({}, "tool_calls")
        + b"data: [DONE]\n\n"
    )
    message = accumulated(raw)
    assert [(b.type, b.id, b.input) for b in message.content] == [("tool_use", "c1", {"a": 1})]


def test_an_in_band_error_ends_the_stream_as_an_error_event() -> None:
    error = {
        "error": {
            "message": "the upstream connection was lost mid-stream",
            "type": "upstream_error",
            "code": "upstream_stream_error",
        }
    }
    raw = response.StreamTranslator().feed(
        chunk({"content": "par"}) + b"data: " + json.dumps(error).encode() + b"\n\ndata: [DONE]\n\n"
    )
    found = events(raw)
    assert [e["type"] for e in found] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert found[-1]["error"] == {"type": "api_error", "message": error["error"]["message"]}
