"""The OpenAI <-> Anthropic Messages translation, as pure functions.

Translated requests are checked against the official `anthropic` package's types with the same
strict validator the gateway tests' Anthropic test server uses (unknown keys rejected at every
depth), including for generated conversations (hypothesis).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmplatform.gateway.compiled import Model
from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.providers import anthropic as a
from llmplatform.gateway.router import worst_case_output
from llmplatform.gateway.worstcase import Shape
from llmplatform_testing import anthropic_server as server

STRICT = server.strict_adapter()


def valid(body: dict[str, Any]) -> dict[str, Any]:
    server.force(STRICT.validate_python(body))
    return body


def translate(messages: list[Any], max_output: int | None = None, **params: Any) -> dict[str, Any]:
    return valid(a.to_messages_request({"messages": messages, **params}, "claude-x", max_output))


def bad(messages: list[Any], **params: Any) -> GatewayError:
    with pytest.raises(GatewayError) as exc:
        a.to_messages_request({"messages": messages, **params}, "claude-x", None)
    assert exc.value.status == 400
    return exc.value


USER = {"role": "user", "content": "hi"}


def test_system_and_developer_messages_become_system() -> None:
    body = translate(
        [
            {"role": "system", "content": "one"},
            USER,
            {
                "role": "developer",
                "content": [{"type": "text", "text": "two"}, {"type": "text", "text": "2"}],
            },
            {"role": "system", "content": ""},
        ]
    )
    assert body["system"] == "one\n\ntwo\n2"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "system" not in translate([USER])


def test_max_tokens_precedence() -> None:
    assert translate([USER])["max_tokens"] == a.DEFAULT_MAX_TOKENS
    assert translate([USER], 900)["max_tokens"] == 900
    assert translate([USER], 900, max_tokens=5)["max_tokens"] == 5
    assert translate([USER], 900, max_tokens=5, max_completion_tokens=6)["max_tokens"] == 6


def test_parameters() -> None:
    body = translate([USER], stop="END", user="u1", temperature=0.3, top_p=0.1, stream=True, seed=3)
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": hashlib.sha256(b"u1").hexdigest()}
    assert body["stream"] is True
    assert not {"temperature", "top_p", "seed", "user", "stop"} & body.keys()
    assert translate([USER], stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in translate([USER], stop=[])
    assert bad([USER], stop=[1]).param == "stop"
    assert bad([USER], n=3).param == "n"
    assert "n" not in translate([USER], n=1)
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert translate([USER], response_format=fmt)["output_config"] == {
        "format": {"type": "json_schema", "schema": schema}
    }
    assert "json_schema" in bad([USER], response_format={"type": "json_object"}).message
    assert "output_config" not in translate([USER], response_format={"type": "text"})


def test_tools_and_tool_choice() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"properties": {"x": {}}}}}
    body = translate([USER], tools=[tool])
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {"x": {}}}}]
    assert "tool_choice" not in body
    choices = {
        "auto": {"type": "auto"},
        "none": {"type": "none"},
        "required": {"type": "any"},
    }
    for given_choice, expected in choices.items():
        assert translate([USER], tools=[tool], tool_choice=given_choice)["tool_choice"] == expected
    named = {"type": "function", "function": {"name": "f"}}
    assert translate([USER], tools=[tool], tool_choice=named, parallel_tool_calls=False)["tool_choice"] == {
        "type": "tool",
        "name": "f",
        "disable_parallel_tool_use": True,
    }
    assert translate([USER], tools=[tool], parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    assert bad([USER], tools=[tool], tool_choice="sometimes").param == "tool_choice"
    assert bad([USER], tools=[{"type": "code_interpreter"}]).param == "tools"
    assert bad([USER], tool_choice="required").param == "tool_choice"


def test_tool_calls_and_results_merge_into_alternating_turns() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    call2 = {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}}
    body = translate(
        [
            USER,
            {"role": "assistant", "content": None, "tool_calls": [call, call2]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
            {"role": "assistant", "content": "more"},
        ]
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}},
        {"type": "tool_use", "id": "c2", "name": "g", "input": {}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "c1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "c2", "content": "two"},
        {"type": "text", "text": "thanks"},
    ]
    assert body["messages"][3]["content"] == [
        {"type": "text", "text": "ok"},
        {"type": "text", "text": "more"},
    ]
    broken = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    assert "not valid JSON" in bad([USER, {"role": "assistant", "tool_calls": [broken]}]).message
    assert "tool_call_id" in bad([USER, {"role": "tool", "content": "x"}]).message


def test_images() -> None:
    body = translate(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/webp;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
                ],
            }
        ]
    )
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
    ]
    for url in ("data:image/bmp;base64,AAAA", "data:image/png,AAAA", "ftp://x/a.png", 3):
        part = {"type": "image_url", "image_url": {"url": url}}
        assert "messages[0].content[0]" in bad([{"role": "user", "content": [part]}]).message
    audio = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    assert "input_audio" in bad([{"role": "user", "content": [audio]}]).message


def test_unsupported_roles_and_empty_conversations() -> None:
    assert "function" in bad([{"role": "function", "name": "f", "content": "x"}]).message
    assert "at least one" in bad([{"role": "system", "content": "only"}]).message
    assert "must be an object" in bad(["hi"]).message


def test_message_to_chat_completion() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "Let me "},
            {"type": "text", "text": "look."},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": "ä"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": None,
        },
    }
    out = a.to_chat_completion(message, created=1700000000)
    choice = out["choices"][0]
    assert choice["message"]["content"] == "Let me look."
    assert choice["message"]["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"q": "ä"})}}
    ]
    assert choice["finish_reason"] == "tool_calls"
    assert out["usage"] == {
        "prompt_tokens": 110,
        "completion_tokens": 5,
        "total_tokens": 115,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    assert (out["id"], out["model"], out["created"], out["object"]) == (
        "msg_1",
        "claude-x",
        1700000000,
        "chat.completion",
    )
    only_tool = a.to_chat_completion({**message, "content": message["content"][3:]}, 0)
    assert only_tool["choices"][0]["message"]["content"] is None
    for reason, finish in [("end_turn", "stop"), ("max_tokens", "length"), ("refusal", "content_filter")]:
        got = a.to_chat_completion({**message, "stop_reason": reason}, 0)["choices"][0]["finish_reason"]
        assert got == finish


def test_errors_map_to_gateway_statuses_and_openai_bodies() -> None:
    raw = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    status, body = a.error_from(529, raw.encode())
    assert status == 503
    assert json.loads(body) == {
        "error": {
            "message": "Overloaded",
            "type": "service_unavailable",
            "param": None,
            "code": "overloaded_error",
        }
    }
    status, body = a.error_from(429, b"<html>busy</html>")
    assert status == 429 and json.loads(body)["error"]["code"] == "api_error"
    assert "429" in json.loads(body)["error"]["message"]


def sse(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n".encode()


def chunks(out: list[bytes]) -> list[Any]:
    return [json.loads(e[5:]) if e != a.DONE else "[DONE]" for e in out]


def test_stream_translation() -> None:
    t = a.StreamTranslator(created=7)
    start = {
        "message": {"id": "msg_s", "model": "claude-x", "usage": {"input_tokens": 25, "output_tokens": 1}}
    }
    events = [
        sse("message_start", start),
        sse("ping", {}),
        sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
        sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
        sse("content_block_stop", {"index": 0}),
        sse("content_block_start", {"index": 1, "content_block": {"type": "thinking", "thinking": ""}}),
        sse("content_block_delta", {"index": 1, "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        sse(
            "content_block_start",
            {"index": 2, "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}}},
        ),
        sse(
            "content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}}
        ),
        sse(
            "content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}}
        ),
        sse("content_block_stop", {"index": 2}),
        sse(
            "message_delta",
            {"delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 15}},
        ),
        sse("message_stop", {}),
    ]
    out = chunks([e for ev in events for e in t.feed(ev)])
    deltas = [c["choices"][0]["delta"] for c in out[:-2]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {
            "tool_calls": [
                {"index": 0, "id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
        {},
    ]
    assert [c["choices"][0]["finish_reason"] for c in out[:-2]] == [None] * 6 + ["tool_calls"]
    assert all(
        c["id"] == "msg_s" and c["object"] == "chat.completion.chunk" and c["created"] == 7 for c in out[:-1]
    )
    assert out[-2]["choices"] == [] and out[-2]["usage"]["prompt_tokens"] == 25
    assert out[-2]["usage"]["completion_tokens"] == 15 and out[-1] == "[DONE]"


def test_stream_errors() -> None:
    overloaded = sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(a.StreamFailed) as exc:
        a.StreamTranslator(created=0).feed(overloaded)
    assert exc.value.status == 503 and json.loads(exc.value.body)["error"]["code"] == "overloaded_error"
    t = a.StreamTranslator(created=0)
    t.feed(sse("message_start", {"message": {"id": "m", "model": "x", "usage": {}}}))
    assert t.failed_status is None
    out = t.feed(overloaded)
    assert t.failed_status == 503
    assert chunks(out) == [json.loads(a.error_from(529, overloaded.split(b"data: ")[1])[1]), "[DONE]"]
    with pytest.raises(ValueError):
        t.feed(b"data: {not json\n")
    assert t.feed(b": a comment\n") == [] and t.feed(b"event: ping\n") == []


def test_reservation_is_the_max_tokens_sent() -> None:
    """Limits reserve what the upstream may generate: for an anthropic model without
    maxOutputTokens that is DEFAULT_MAX_TOKENS, not the rest of a 200k context window."""
    model = Model(
        id="p/claude",
        name="claude",
        tier="premium",
        provider="anthropic",
        upstream_model="claude-x",
        urls={},
        api_key=None,
        capabilities=frozenset({"chat"}),
        context_window=200_000,
        max_output_tokens=None,
        input_price=0.0,
        output_price=0.0,
        prior_latency_ms=1000.0,
        prior_availability=0.99,
    )
    assert worst_case_output(model, 100, Shape(), "chat") == a.DEFAULT_MAX_TOKENS
    assert worst_case_output(model, 100, Shape(max_tokens=50), "chat") == 50
    openai_model = Model(**{**model.__dict__, "provider": "openai"})
    assert worst_case_output(openai_model, 100, Shape(), "chat") == 199_900


def test_headers() -> None:
    assert a.headers("sk-ant", "rid") == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-request-id": "rid",
        "x-api-key": "sk-ant",
    }
    assert "x-api-key" not in a.headers(None, "rid")


# -- generated conversations --------------------------------------------------------------

text = st.text(min_size=1, max_size=20)
call = st.builds(
    lambda i, name, args: {
        "id": f"call_{i}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    },
    st.integers(0, 99),
    st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
    st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers() | text, max_size=3),
)
part = st.one_of(
    text.map(lambda t: {"type": "text", "text": t}),
    st.sampled_from(["image/png", "image/jpeg"]).map(
        lambda m: {"type": "image_url", "image_url": {"url": f"data:{m};base64,AAAA"}}
    ),
)
message = st.one_of(
    st.builds(lambda c: {"role": "system", "content": c}, text),
    st.builds(lambda c: {"role": "user", "content": c}, text | st.lists(part, min_size=1, max_size=3)),
    st.builds(
        lambda c, calls: {"role": "assistant", "content": c, "tool_calls": calls},
        st.none() | text,
        st.lists(call, max_size=2),
    ),
    st.builds(
        lambda i, c: {"role": "tool", "tool_call_id": f"call_{i}", "content": c}, st.integers(0, 99), text
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(message, min_size=1, max_size=8).filter(lambda ms: any(m["role"] != "system" for m in ms)),
    st.none() | st.integers(1, 10_000),
)
def test_generated_conversations_translate_to_valid_alternating_requests(
    messages: list[dict[str, Any]], max_tokens: int | None
) -> None:
    body = translate(messages, None, max_tokens=max_tokens, stream=True)
    roles = [m["role"] for m in body["messages"]]
    assert all(x != y for x, y in itertools.pairwise(roles))
    n_calls = sum(len(m.get("tool_calls") or []) for m in messages)
    n_results = sum(m["role"] == "tool" for m in messages)
    blocks = [b for m in body["messages"] for b in m["content"]]
    assert sum(b["type"] == "tool_use" for b in blocks) == n_calls
    assert sum(b["type"] == "tool_result" for b in blocks) == n_results
