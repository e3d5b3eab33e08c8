"""A hostile or broken upstream (#12 items 6, 7, 8, 9, 14): what the client sees, what is
audited and counted. The hostile behaviours are the project's mock-upstream's `hostile` modes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing import protocol as pw


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    return pw.start(gateway_world)


@pytest.fixture
def w(world: dict[str, Any]) -> dict[str, Any]:
    h.mock_config(world["evil"], hostile="", fail_next=0, failure_status=500, hostile_bytes=1024 * 1024)
    return world


def client(w: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=w["base"] + "/v1", api_key=pw.KEY, max_retries=0)


def sse_events(body: bytes) -> list[bytes]:
    return [e for e in body.split(b"\n\n") if e.strip()]


def raw_stream(w: dict[str, Any]) -> tuple[bytes, bytes]:
    """A streamed request to the hostile model over a raw socket: (head, body) as sent."""
    body = json.dumps({"model": "evil", "messages": pw.MESSAGES, "stream": True}).encode()
    data = pw.raw_exchange(w["port"], pw.raw_request("/v1/chat/completions", body))
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def assert_in_band_error(w: dict[str, Any], code: str, kind: str) -> None:
    """A stream that started and broke: exactly one status line (200), the good chunk, then an
    OpenAI error event and [DONE]; audited as 502 with the code, counted as an upstream error."""
    before = h.metric(w["base"], "llmplatform_upstream_errors_total", model="evil", kind=kind)
    head, rest = raw_stream(w)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert rest.count(b"HTTP/1.1") == 0, rest[-500:]  # never a second status line in the body
    # chunked framing: pull the SSE text out of the chunks
    text = decode_chunked(rest)
    events = sse_events(text)
    assert any(b'"content":"ok "' in e for e in events[:-2])  # what came before the failure
    error = json.loads(events[-2].removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_stream_error" and error["type"] == "upstream_error", error
    assert events[-1] == b"data: [DONE]"
    rid = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line)[
        "x-request-id"
    ]
    record = pw.audited(w, rid)
    assert record["status"] == 502 and record["error_code"] == code, record
    after = h.metric(w["base"], "llmplatform_upstream_errors_total", model="evil", kind=kind)
    assert after == before + 1


def decode_chunked(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


# -- 6: failures after the response started ----------------------------------------------------


@pytest.mark.parametrize("size", [300_000, 3_000_000])
def test_oversized_sse_line_ends_the_stream_in_band(w: dict[str, Any], size: int) -> None:
    """An event longer than the reader's line limit once made the gateway write a second status
    line into the chunked body (the gateway's event limit is 256 KiB; aiohttp's own line limit
    may come first)."""
    h.mock_config(w["evil"], hostile="huge_event", hostile_bytes=size)
    assert_in_band_error(w, "upstream_stream_error", "stream_too_large")


def test_the_official_client_sees_the_in_band_error(w: dict[str, Any]) -> None:
    h.mock_config(w["evil"], hostile="huge_event", hostile_bytes=300_000)
    with pytest.raises(openai.APIError) as caught:
        for _ in client(w).chat.completions.create(model="evil", messages=pw.MESSAGES, stream=True):
            pass
    assert "size limits" in str(caught.value)


def test_upstream_reset_mid_stream_ends_in_band(w: dict[str, Any]) -> None:
    h.mock_config(w["evil"], failure_mode="drop", fail_next=1, completion_tokens=8)
    head, rest = raw_stream(w)
    assert head.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1" not in rest
    events = sse_events(decode_chunked(rest))
    assert json.loads(events[-2].removeprefix(b"data: "))["error"]["code"] == "upstream_stream_error"
    assert events[-1] == b"data: [DONE]"
    h.mock_config(w["evil"], failure_mode="status")


# -- 14: malformed SSE is an upstream stream error ---------------------------------------------


@pytest.mark.parametrize("mode", ["garbage_sse", "bad_json_sse"])
def test_malformed_sse_mid_stream_is_an_upstream_error(w: dict[str, Any], mode: str) -> None:
    h.mock_config(w["evil"], hostile=mode)
    assert_in_band_error(w, "upstream_stream_error", "malformed_stream")


def test_malformed_sse_before_the_first_event_is_a_502(w: dict[str, Any]) -> None:
    """Nothing reached the client yet: a plain 502 (and a fallback, were 502 retried)."""
    h.mock_config(w["evil"], hostile="garbage_first")
    r = pw.chat(w, "evil", stream=True)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "upstream_stream_error"
    assert pw.audited(w, r.headers["x-request-id"])["status"] == 502


# -- 7: upstream body size ---------------------------------------------------------------------


def test_oversized_json_answer_is_a_clear_502(w: dict[str, Any]) -> None:
    h.mock_config(w["evil"], hostile="huge_body", hostile_bytes=pw.MAX_UPSTREAM + 1000)
    r = pw.chat(w, "evil")
    assert r.status_code == 502, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == "upstream_response_too_large" and str(pw.MAX_UPSTREAM) in error["message"]
    assert pw.audited(w, r.headers["x-request-id"])["status"] == 502
    # under the cap, the same answer passes whole
    h.mock_config(w["evil"], hostile="huge_body", hostile_bytes=pw.MAX_UPSTREAM - 100_000)
    r = pw.chat(w, "evil")
    assert r.status_code == 200
    assert len(r.json()["choices"][0]["message"]["content"]) == pw.MAX_UPSTREAM - 100_000


def test_endless_stream_is_cut_at_the_cap(w: dict[str, Any]) -> None:
    h.mock_config(w["evil"], hostile="endless", hostile_bytes=pw.MAX_UPSTREAM + 500_000)
    assert_in_band_error(w, "upstream_stream_error", "stream_too_large")


# -- 8: redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_redirect_is_an_error_never_followed(w: dict[str, Any], stream: bool) -> None:
    h.mock_config(w["evil"], hostile="redirect")
    r = pw.chat(w, "evil", stream=stream)
    assert r.status_code == 502, r.text[:300]
    assert r.json()["error"]["code"] == "upstream_redirect"
    assert "REDIRECTED" not in r.text
    assert h.mock_stats(w["evil"])["by_path"].get("/_mock/redirected", 0) == 0  # never followed
    assert pw.audited(w, r.headers["x-request-id"])["status"] == 502


# -- 9: Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_passed_through_429_keeps_retry_after(w: dict[str, Any], stream: bool) -> None:
    h.mock_config(w["evil"], fail_next=1, failure_status=429, retry_after="7")
    with pytest.raises(openai.RateLimitError) as caught:
        client(w).chat.completions.create(model="evil", messages=pw.MESSAGES, stream=stream)
    assert caught.value.response.headers["retry-after"] == "7"


def test_malformed_retry_after_is_not_forwarded(w: dict[str, Any]) -> None:
    h.mock_config(w["evil"], fail_next=1, failure_status=429, retry_after="soon, maybe")
    r = pw.chat(w, "evil")
    assert r.status_code == 429 and "retry-after" not in r.headers


def test_good_model_still_serves(w: dict[str, Any]) -> None:
    out = client(w).chat.completions.create(model="good", messages=pw.MESSAGES)
    assert out.choices[0].message.content
    assert httpx.get(w["base"] + "/healthz").status_code == 200
