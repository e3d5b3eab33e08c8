"""The Responses API's pure parts: the stream renderer (chat chunks in, Responses events out),
the passthrough stream reader (Responses events in, chat chunks out), the request translation
and the estimate. Through the gateway they are tested in tests/gateway/test_responses_api.py."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from llmplatform.gateway import responses as rs
from llmplatform.gateway import sse
from llmplatform.gateway.context import Ctx
from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.providers.base import StreamFailed
from llmplatform.gateway.providers.openai_responses import StreamReader
from llmplatform.gateway.responses_render import Renderer


def ctx(body: dict[str, Any] | None = None) -> Ctx:
    c = Ctx(request_id="rid1", endpoint="responses", start=0.0, http=cast(Any, None))
    c.body = body or {"model": "m", "input": "hi"}
    c.dialect = rs.DIALECT
    c.prompt, c.worst_out, c.relayed_out = 7, 100, 3
    return c


def chunk(delta: dict[str, Any], finish: str | None = None, rid: str = "chatcmpl-1") -> bytes:
    payload = {"id": rid, "object": "chat.completion.chunk", "created": 5, "model": "up", "choices": []}
    payload["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    return sse.frame(payload)


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if block:
            kind, data = block.split("\n")
            assert kind.startswith("event: ") and data.startswith("data: ")
            event = json.loads(data[6:])
            assert event["type"] == kind[7:]
            out.append(event)
    return out


def test_renderer_text_then_tool_call_then_done() -> None:
    r = Renderer(ctx())
    written = r.feed(chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hel"}))
    written += r.feed(chunk({"content": "lo"}).replace(b"\n", b"\r\n"))  # upstream line ends
    call = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "f", "arguments": ""}}
    written += r.feed(chunk({"tool_calls": [call]}))
    written += r.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}))
    written += r.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, "tool_calls"))
    written += r.feed(sse.DONE + sse.SEPARATOR)
    found = events(written)
    kinds = [e["type"] for e in found]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in found] == list(range(len(found)))
    final = found[-1]["response"]
    assert final["id"] == "resp_rid1" and final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert final["output"][1] == {
        "id": "fc_rid1_1",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_9",
        "name": "f",
        "arguments": '{"a":1}',
    }
    # no believable usage was reported: the gateway's own count, as settlement charges it
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (7, 3)
    assert r.feed(chunk({"content": "late"})) == b""  # nothing after the end


def test_renderer_length_is_incomplete_and_errors_fail() -> None:
    r = Renderer(ctx())
    out = events(r.feed(chunk({"content": "x"}, rid="resp_up") + chunk({}, "length") + sse.DONE + b"\n"))
    assert out[-1]["type"] == "response.incomplete"
    assert out[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert out[0]["response"]["id"] == "resp_up"  # a passthrough keeps the upstream's id
    r = Renderer(ctx())
    error = {
        "error": {"message": "lost", "type": "upstream_error", "param": None, "code": "upstream_stream_error"}
    }
    out = events(r.feed(chunk({"content": "x"}) + sse.frame(error) + sse.DONE + b"\n"))
    assert [e["type"] for e in out][-2:] == ["error", "response.failed"]
    assert out[-2]["code"] == "upstream_stream_error" and out[-1]["response"]["status"] == "failed"


def responses_event(kind: str, **payload: Any) -> bytes:
    return f"event: {kind}\n".encode() + sse.event({"type": kind, **payload})


def test_stream_reader_maps_events_and_usage() -> None:
    r = StreamReader(created=1)
    out: list[bytes] = []
    out += r.feed(responses_event("response.created", response={"id": "resp_1", "model": "gpt"}))
    out += r.feed(responses_event("response.output_text.delta", output_index=0, delta="Hi"))
    item = {"type": "function_call", "call_id": "c1", "name": "f"}
    out += r.feed(responses_event("response.output_item.added", output_index="bad", item=item))
    out += r.feed(responses_event("response.function_call_arguments.delta", output_index=None, delta="{}"))
    usage = {"input_tokens": 3, "output_tokens": 2, "input_tokens_details": {"cached_tokens": 1}}
    out += r.feed(responses_event("response.completed", response={"status": "completed", "usage": usage}))
    assert out[-1] == sse.DONE
    chunks = [json.loads(e[5:]) for e in out[:-1]]
    assert chunks[1]["choices"][0]["delta"] == {"content": "Hi"}
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"] == "c1"
    assert chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"] == {"arguments": "{}"}
    assert chunks[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[5]["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 1},
    }


def test_stream_reader_errors() -> None:
    with pytest.raises(StreamFailed):
        StreamReader(created=1).feed(responses_event("error", code="x", message="no"))
    r = StreamReader(created=1)
    r.feed(responses_event("response.created", response={"id": "resp_1"}))
    out = r.feed(
        responses_event("response.failed", response={"error": {"code": "server_error", "message": "m"}})
    )
    assert r.failed_status == 502 and out[-1] == sse.DONE
    assert json.loads(out[0][5:])["error"]["message"] == "m"
    with pytest.raises(sse.BadStream):
        r.feed(b"<html>502</html>\n")


def test_to_chat_and_refusals() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "instructions": "sys",
        "input": [
            {"role": "developer", "content": [{"type": "input_text", "text": "dev"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": "r"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
    }
    assert rs.check(body) == ("m", None, False)
    chat = rs.to_chat(body)
    assert chat["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "system", "content": "dev"},
        {
            "role": "assistant",
            "content": "a",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "r"},
    ]
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": {"type": "object"}},
    }
    with pytest.raises(GatewayError) as exc:
        rs.to_chat(
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}
        )
    assert exc.value.param == "input[0].content[0]"
    for bad, param in (
        ({"input": []}, "input"),
        ({"tool_choice": "any"}, "tool_choice"),
        ({"user": "u" * 300}, "user"),
    ):
        with pytest.raises(GatewayError) as exc:
            rs.check({"model": "m", "input": "x", **bad})
        assert exc.value.param == param


def test_prompt_estimate_counts_every_part() -> None:
    plain = rs.prompt_tokens({"input": "hello"})
    image = {"type": "input_image", "image_url": "data:image/png;base64," + "A" * 90000}
    with_image = rs.prompt_tokens({"input": [{"role": "user", "content": [image]}]})
    assert with_image == plain - 2 + rs.IMAGE_TOKENS  # flat, not the size of the data URL
    assert rs.prompt_tokens({"input": "hello", "tools": [{"description": "x" * 300}]}) > plain + 100
