"""Bad input through the HTTP surface: every malformed request gets a clear 4xx with an
OpenAI error body and exactly one audit record, nothing reaches the upstream, and the gateway
keeps serving. (Random bodies are fuzzed in test_reload_fuzz.py.)"""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h

KEY = "llmp-test-bad-input-key"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("upstream")
    docs = [
        h.model("alpha", url),
        h.policy({"standard": ["alpha"]}),
        *h.tenant("t", {"k": KEY}, ["standard"]),
    ]
    gateway_world.gateway(docs, "--max-body-bytes", "300000")
    return gateway_world


def post(
    world: dict[str, Any],
    raw: bytes,
    content_type: str | None = "application/json",
    path: str = "chat/completions",
) -> tuple[httpx.Response, str]:
    rid = f"bad-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {KEY}", "x-request-id": rid}
    if content_type is not None:
        headers["content-type"] = content_type
    return httpx.post(f"{world['base']}/v1/{path}", content=raw, headers=headers, timeout=30), rid


def body(**fields: Any) -> bytes:
    return json.dumps({"model": "auto", "messages": MESSAGES, **fields}).encode()


def nested(depth: int) -> bytes:
    """A chat body whose one message's content holds `depth` levels of arrays overall."""
    inner = "[" * (depth - 3) + "]" * (depth - 3)  # the body object, messages, the message: 3 levels
    return b'{"model":"auto","messages":[{"role":"user","content":' + inner.encode() + b"}]}"


J, CHAT = "application/json", "chat/completions"
CASES: list[tuple[str, bytes, str | None, str, int, str]] = [
    # name, body, content type, endpoint, status, words the error message must contain
    ("invalid-utf8", b'{"model":"auto","messages":[{"role":"user","content":"\xff\xfe"}]}', J, CHAT, 400,
     "not valid UTF-8"),
    ("nested-100k", b'{"model":"auto","messages":' + b"[" * 100_000 + b"]" * 100_000 + b"}", J, CHAT, 400,
     "nests deeper"),
    ("nested-65", nested(65), J, CHAT, 400, "nests deeper than 64"),
    ("binary", os.urandom(4096), None, CHAT, 400, "UTF-8"),
    ("gzip", gzip.compress(body()), J, CHAT, 400, "UTF-8"),
    ("octet-stream", body(), "application/octet-stream", CHAT, 415, "Content-Type"),
    ("form", b"model=auto&prompt=hi", "application/x-www-form-urlencoded", "completions", 415,
     "application/json"),
    ("multipart", b"--x\r\n\r\nhi\r\n--x--", "multipart/form-data; boundary=x", "embeddings", 415,
     "Content-Type"),
    ("empty", b"", J, CHAT, 400, "could not parse"),
    ("truncated", body()[:-5], J, CHAT, 400, "could not parse"),
    ("array", b"[1, 2]", J, CHAT, 400, "must be a JSON object, not list"),
    ("string", b'"hi"', J, CHAT, 400, "not str"),
    ("null", b"null", J, CHAT, 400, "not NoneType"),
    ("nan", b'{"model":"auto","messages":[],"temperature":NaN}', J, CHAT, 400, "NaN is not valid JSON"),
    ("model-number", body(model=5), J, CHAT, 400, "model"),
    ("messages-empty", body(messages=[]), J, CHAT, 400, "at least one"),
    ("message-not-object", body(messages=["hi"]), J, CHAT, 400, "messages[0]"),
    ("message-no-role", body(messages=[{"content": "hi"}]), J, CHAT, 400, "messages[0].role"),
    ("content-number", body(messages=[{"role": "user", "content": 5}]), J, CHAT, 400, "messages[0].content"),
    ("prompt-number", json.dumps({"model": "auto", "prompt": 5}).encode(), J, "completions", 400, "prompt"),
    ("input-object", json.dumps({"model": "auto", "input": {}}).encode(), J, "embeddings", 400, "input"),
    ("user-number", body(user=5), J, CHAT, 400, "user"),
    ("user-huge", body(user="u" * 10_000), J, CHAT, 400, "at most 256"),
    ("max-tokens-string", body(max_tokens="5"), J, CHAT, 400, "max_tokens"),
    ("stream-string", body(stream="yes"), J, CHAT, 400, "stream"),
    ("too-large", body(messages=[{"role": "user", "content": "x" * 400_000}]), J, CHAT, 413,
     "exceeds 300000 bytes"),
    ("context-window", body(messages=[{"role": "user", "content": "x" * 150_000}]), J, CHAT, 400,
     "fits no context window"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "content_type", "path", "status", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_a_clear_4xx_with_one_audit_record(
    world: dict[str, Any], raw: bytes, content_type: str | None, path: str, status: int, words: str
) -> None:
    before = h.mock_stats(world["upstream"])
    r, rid = post(world, raw, content_type, path)
    assert r.status_code == status, r.text[:300]
    error = r.json()["error"]
    assert words in error["message"], error
    assert error["type"] == "invalid_request_error" and error["code"]
    assert r.headers["x-client-request-id"] == rid and r.headers["x-request-id"] != rid
    assert h.mock_stats(world["upstream"]) == before  # nothing left the gateway
    deadline = time.monotonic() + 5
    while True:
        found = [json.loads(x) for x in world["log"].read_text().splitlines() if rid in x]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    time.sleep(0.15)
    found = [json.loads(x) for x in world["log"].read_text().splitlines() if rid in x]
    assert len(found) == 1 and found[0]["status"] == status and found[0]["error_code"] == error["code"]


def test_still_serving_and_shallow_nesting_is_fine(world: dict[str, Any]) -> None:
    """After all of the above, the same gateway answers; 64 levels are accepted."""
    r, _ = post(world, nested(64))
    assert r.status_code == 200, r.text[:300]
    c = openai.OpenAI(base_url=world["base"] + "/v1", api_key=KEY, max_retries=0)
    assert c.chat.completions.create(model="auto", messages=MESSAGES).choices[0].message.content
    r, _ = post(world, body(), "text/plain; charset=utf-8")  # JSON sent as text/plain is still JSON
    assert r.status_code == 200


def test_openai_client_sees_the_errors_as_its_own_exceptions(world: dict[str, Any]) -> None:
    c = openai.OpenAI(base_url=world["base"] + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x" * 150_000}])
    assert exc.value.code == "context_length_exceeded"
    with pytest.raises(openai.APIStatusError) as big:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x" * 400_000}])
    assert big.value.status_code == 413 and big.value.code == "request_too_large"
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}], user="u" * 300)
    assert exc.value.param == "user"


def test_unknown_path_and_wrong_method_have_a_code(world: dict[str, Any]) -> None:
    """aiohttp's own 404 and 405 come out as OpenAI bodies whose `code` clients can branch on."""
    headers = {"Authorization": f"Bearer {KEY}"}
    r = httpx.get(f"{world['base']}/v1/no-such-path", headers=headers, timeout=30)
    assert r.status_code == 404
    assert r.json()["error"] == {
        "message": "Not Found",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
    r = httpx.get(f"{world['base']}/v1/chat/completions", headers=headers, timeout=30)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in r.headers["allow"]
