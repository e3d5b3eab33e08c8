"""Hostile request bodies and headers (#12 items 10, 11, 15): non-finite numbers, undecodable
or odd Authorization headers, and client-chosen request ids."""

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


def status_and_body(data: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines[1:])}
    return int(lines[0].split()[1]), json.loads(body), headers


# -- 10: non-finite numbers --------------------------------------------------------------------

BASE = '{"model": "good", "messages": [{"role": "user", "content": "hi"}]'
NON_FINITE = {
    "temperature-overflow": BASE + ', "temperature": 1e999}',
    "negative-overflow": BASE + ', "top_p": -1e999}',
    "upper-exponent": BASE + ', "presence_penalty": 1E400}',
    "nested-in-metadata": BASE + ', "metadata": {"a": {"b": [1, 2, 1e999]}}}',
    "in-tool-schema": BASE
    + ', "tools": [{"type": "function", "function": {"name": "f", "parameters": {"maximum": 9e999}}}]}',
    "NaN": BASE + ', "temperature": NaN}',
    "Infinity": BASE + ', "temperature": Infinity}',
    "-Infinity": BASE + ', "logit_bias": {"1": -Infinity}}',
}


@pytest.mark.parametrize("raw", list(NON_FINITE.values()), ids=list(NON_FINITE))
def test_non_finite_numbers_are_a_400_anywhere(world: dict[str, Any], raw: str) -> None:
    before = h.mock_stats(world["good"])["requests"]
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        content=raw.encode(),
        headers={"Authorization": f"Bearer {pw.KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_json" and error["type"] == "invalid_request_error"
    assert h.mock_stats(world["good"])["requests"] == before  # nothing went upstream


def test_large_but_finite_numbers_pass(world: dict[str, Any]) -> None:
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        content=(BASE + ', "metadata": {"big": 1.7e308, "small": 5e-324}}').encode(),
        headers={"Authorization": f"Bearer {pw.KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


# -- 11: undecodable and odd Authorization headers ---------------------------------------------

ODD_AUTH = {
    "latin1-bytes": b"Bearer \xff\xfe\xfdkey",
    "invalid-utf8-after-key": b"Bearer " + pw.KEY.encode() + b"\xc3\x28",
    "lone-continuation": b"Bearer \x80\x80\x80",
    "utf8-non-ascii": "Bearer llmp-ключ".encode(),
    "scheme-only": b"Bearer",
    "spaces-only": b"Bearer    ",
    "basic-scheme": b"Basic dXNlcjpwYXNz",
    "no-scheme": pw.KEY.encode(),
    "huge-token": b"Bearer " + b"k" * 7000,
    "empty": b"",
}


@pytest.mark.parametrize("value", list(ODD_AUTH.values()), ids=list(ODD_AUTH))
def test_odd_authorization_is_a_401_never_a_500(world: dict[str, Any], value: bytes) -> None:
    body = json.dumps({"model": "good", "messages": pw.MESSAGES}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: "
        + value
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    status, error, _ = status_and_body(pw.raw_exchange(world["port"], request))
    assert status == 401, error
    assert error["error"]["code"] == "invalid_api_key"
    assert pw.KEY not in json.dumps(error)


def test_two_authorization_headers_do_not_crash(world: dict[str, Any]) -> None:
    body = json.dumps({"model": "good", "messages": pw.MESSAGES}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer \xff\r\n"
        b"Authorization: Bearer nope\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )
    status, _, _ = status_and_body(pw.raw_exchange(world["port"], request))
    assert status in (400, 401)


def test_models_endpoint_with_undecodable_key_is_a_401(world: dict[str, Any]) -> None:
    request = (
        b"GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
    )
    status, error, _ = status_and_body(pw.raw_exchange(world["port"], request))
    assert status == 401 and error["error"]["code"] == "invalid_api_key"


# -- 15: request ids ---------------------------------------------------------------------------


def test_one_client_id_three_requests_three_audit_ids(world: dict[str, Any]) -> None:
    c = openai.OpenAI(base_url=world["base"] + "/v1", api_key=pw.KEY, max_retries=0)
    gateway_ids = []
    for stream in (False, True, False):
        raw = c.chat.completions.with_raw_response.create(
            model="good", messages=pw.MESSAGES, stream=stream, extra_headers={"x-request-id": "same-id-1"}
        )
        if stream:
            for _ in raw.parse():
                pass
        assert raw.headers["x-client-request-id"] == "same-id-1"
        gateway_ids.append(raw.headers["x-request-id"])
    assert len(set(gateway_ids)) == 3 and "same-id-1" not in gateway_ids
    records = [pw.audited(world, rid) for rid in gateway_ids]
    assert all(r["client_request_id"] == "same-id-1" for r in records)
    assert len({r["request_id"] for r in records}) == 3
    # an error answer carries both ids as well
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        content=b"{",
        headers={"Authorization": f"Bearer {pw.KEY}", "x-request-id": "same-id-1"},
    )
    assert r.status_code == 400 and r.headers["x-client-request-id"] == "same-id-1"
    assert pw.audited(world, r.headers["x-request-id"])["client_request_id"] == "same-id-1"


def test_client_id_is_truncated_and_cleaned(world: dict[str, Any]) -> None:
    long_id = "é" + "x" * 500
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        json={"model": "good", "messages": pw.MESSAGES},
        headers={"Authorization": f"Bearer {pw.KEY}", "x-request-id": long_id.encode()},
    )
    assert r.status_code == 200
    recorded = pw.audited(world, r.headers["x-request-id"])["client_request_id"]
    assert len(recorded) == 128 and recorded.isascii() and recorded.isprintable()
    assert r.headers["x-client-request-id"] == recorded


def test_a_key_sent_as_request_id_is_not_recorded(world: dict[str, Any]) -> None:
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        json={"model": "good", "messages": pw.MESSAGES},
        headers={"Authorization": f"Bearer {pw.KEY}", "x-request-id": pw.KEY},
    )
    assert r.status_code == 200
    assert pw.KEY not in json.dumps(pw.audited(world, r.headers["x-request-id"]))
    assert pw.KEY not in r.headers.get("x-client-request-id", "")
