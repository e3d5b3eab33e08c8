"""The Responses API (`POST /v1/responses`) attacked like the chat path (#12, #17): every rule
that holds for chat completions must hold here too.

1. Budget escapes: the reservation covers `max_output_tokens`, or the whole rest of the
   context window when it is absent; tool and text-format definitions count as input;
   concurrent requests cannot overspend a budget; usage an upstream lies about is rejected and
   the gateway's own count charged.
2. PII in odd fields: instructions, metadata keys and values, function call arguments and
   outputs, tool and JSON-schema descriptions, image URLs, values split across input parts:
   none of it reaches a model that is not cleared for it, whichever way the request goes
   (passed through, or translated for a self-hosted or an Anthropic model).
3. A client that leaves a Responses stream mid-way is charged what it was sent, in exactly
   one 499 audit record; hostile upstreams (garbage, redirects, huge bodies) get a clean error.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from llmplatform.gateway import governance as gv
from llmplatform_testing import attacks as bh
from llmplatform_testing import gateway as h

DROP_KEY = "llmp-sec-resp-drop"
BUDGET_KEY = "llmp-sec-resp-budget"
SHAPE_KEY = "llmp-sec-resp-shape"
PII_KEY = "llmp-sec-resp-pii"
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
SSN = "078-05-1120"
UPSTREAM_LIMIT = 1024 * 1024
"""The test gateway's --max-upstream-body-bytes: a huge body is a few MiB, not 32."""


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    meter = gateway_world.mock("meter")
    chatm = gateway_world.mock("chatm")
    anth = gateway_world.anthropic()
    pricing = {"inputPerMillionTokens": 1000, "outputPerMillionTokens": 1000}
    local = h.model(
        "local", chatm, tier="efficient", maxDataClassification="public", serving={"image": "x/y:1"}
    )
    del local["spec"]["endpoint"]
    docs = [
        h.model("meter", meter, pricing=pricing),
        h.model(
            "pricey",
            meter,
            tier="premium",
            maxOutputTokens=4,
            pricing={"inputPerMillionTokens": 10000, "outputPerMillionTokens": 10000},
        ),
        h.model("pub", meter, tier="specialized", maxDataClassification="public"),
        local,
        h.anthropic_model("claude", anth, tier="specialized", maxDataClassification="public"),
        h.policy(
            {
                "standard": ["meter"],
                "premium": ["pricey"],
                "specialized": ["pub", "claude"],
                "efficient": ["local"],
            },
            timeouts={"connectSeconds": 2, "requestSeconds": 20, "streamIdleSeconds": 10},
            fallback={"maxAttempts": 1, "retryOn": [500, 503, 504, "timeout", "connect"], "acrossTiers": []},
            dataGovernance={"piiRedaction": True, "outputScanning": True},
        ),
        *h.tenant("drop", {"k": DROP_KEY}, ["standard"]),
        *h.tenant("budget", {"k": BUDGET_KEY}, ["premium"], limits={"costPerMonthUSD": 1}),
        *h.tenant("shape", {"k": SHAPE_KEY}, ["standard"], limits={"tokensPerDay": 1000}),
        *h.tenant("pii", {"k": PII_KEY}, ["specialized", "efficient"]),
    ]
    gateway_world.gateway(
        docs, "--upstream-override", f"local={chatm}/v1", "--max-upstream-body-bytes", str(UPSTREAM_LIMIT)
    )
    return gateway_world


@pytest.fixture(autouse=True)
def fresh(world: dict[str, Any]) -> None:
    for name in ("meter", "chatm"):
        h.mock_config(
            world[name],
            latency_ms=0,
            chunk_delay_ms=0,
            done_delay_ms=0,
            usage_json=None,
            completion_tokens=16,
            hostile="",
            reply=None,
            tool_arguments=None,
        )
    httpx.post(world["anthropic"] + "/_reset").raise_for_status()


def post(world: dict[str, Any], key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        world["base"] + "/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


# -- 1. budgets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plain", "escape"),
    [
        ({"max_output_tokens": 50}, {"max_output_tokens": 2000}),
        ({"max_output_tokens": 50}, {"max_output_tokens": None}),  # the context window's rest
        (
            {"max_output_tokens": 50},
            {"tools": [{"type": "function", "name": "f", "description": "d" * 3000, "parameters": {}}]},
        ),
        (
            {"max_output_tokens": 50},
            {"text": {"format": {"type": "json_schema", "name": "s", "schema": {"description": "y" * 3000}}}},
        ),
        ({"max_output_tokens": 50}, {"instructions": "z" * 3000}),
    ],
    ids=["max_output_tokens", "no-max-output-tokens", "tool-definitions", "text-format", "instructions"],
)
def test_the_reservation_covers_the_request_as_sent(
    world: dict[str, Any], plain: dict[str, Any], escape: dict[str, Any]
) -> None:
    """1000 tokens a day: the plain request fits, the other one's worst case alone does not,
    so it is refused before the upstream sees it."""
    body = {"model": "meter", "input": "hello", **plain}
    assert post(world, SHAPE_KEY, body).status_code == 200
    before = h.mock_stats(world["meter"])["requests"]
    escaped = {k: v for k, v in {**body, **escape}.items() if v is not None}
    r = post(world, SHAPE_KEY, escaped)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["type"] == "rate_limit_error"
    assert h.mock_stats(world["meter"])["requests"] == before


def test_concurrent_requests_cannot_overspend_a_budget(world: dict[str, Any]) -> None:
    """No max_output_tokens: the model's maxOutputTokens (4) is reserved with the prompt's
    estimate (about 0.13 USD at 0.01 USD a token), so a 1 USD budget admits some of twenty
    concurrent requests and refuses the rest."""
    h.mock_config(world["meter"], latency_ms=300, completion_tokens=4)
    body = {"model": "pricey", "input": "hello"}

    async def run() -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=20)) as c:

            async def one() -> int:
                r = await c.post(
                    world["base"] + "/v1/responses",
                    json=body,
                    headers={"Authorization": f"Bearer {BUDGET_KEY}"},
                )
                return r.status_code

            return list(await asyncio.gather(*(one() for _ in range(20))))

    statuses = asyncio.run(run())
    assert statuses.count(200) >= 1 and 429 in statuses, statuses
    assert set(statuses) <= {200, 429}, statuses
    assert bh.usage(world["base"], BUDGET_KEY)["costThisMonthUSD"] <= 1.0


@pytest.mark.parametrize(
    "usage",
    [
        '{"input_tokens": 5, "output_tokens": 100000, "total_tokens": 100005}',
        '{"input_tokens": -5, "output_tokens": 1}',
        '{"input_tokens": "5", "output_tokens": 1.5}',
        '{"input_tokens": true, "output_tokens": 3}',
        "[]",
    ],
    ids=["over-max-output", "negative", "strings-and-floats", "bool", "not-an-object"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_lying_usage_is_not_charged(world: dict[str, Any], usage: str, stream: bool) -> None:
    h.mock_config(world["meter"], usage_json=usage, completion_tokens=4)
    rejected = h.metric(world["base"], "llmplatform_upstream_usage_rejected_total", model="meter")
    r = post(world, DROP_KEY, {"model": "meter", "input": "hello", "max_output_tokens": 10, "stream": stream})
    assert r.status_code == 200, r.text
    if stream:
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        shown = events[-1]["response"]["usage"]
        assert events[-1]["type"] == "response.completed"
    else:
        shown = r.json()["usage"]
    record = bh.records_of(world["log"], r.headers["x-request-id"])[0]
    assert 0 < record["tokens_out"] <= 10 and record["tokens_in"] > 0, record
    # the client is shown what it was charged, not the upstream's claim
    assert (shown["input_tokens"], shown["output_tokens"]) == (record["tokens_in"], record["tokens_out"])
    assert h.metric(world["base"], "llmplatform_upstream_usage_rejected_total", model="meter") == rejected + 1


# -- 2. PII in odd fields -------------------------------------------------------------------------


ODD_FIELDS: dict[str, dict[str, Any]] = {
    "instructions": {"instructions": f"Reply to {EMAIL} please"},
    "metadata value": {"metadata": {"owner": EMAIL}},
    "metadata key": {"metadata": {EMAIL: "owner"}},
    "function call arguments": {
        "input": [
            {"role": "user", "content": "hi"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup",
                "arguments": json.dumps({"card": CARD}),
            },
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ]
    },
    "function call output": {
        "input": [
            {"role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": f"the SSN is {SSN}"},
        ]
    },
    "function output as JSON with escapes": {
        "input": [
            {"role": "user", "content": "hi"},
            {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": json.dumps({"e": EMAIL}, ensure_ascii=True).replace("@", "\\u0040"),
            },
        ]
    },
    "tool description": {
        "tools": [{"type": "function", "name": "mail", "description": f"mails {EMAIL}", "parameters": {}}]
    },
    "tool schema": {
        "tools": [
            {
                "type": "function",
                "name": "pay",
                "parameters": {"type": "object", "properties": {"card": {"type": "string", "default": CARD}}},
            }
        ]
    },
    "text format schema": {
        "text": {
            "format": {
                "type": "json_schema",
                "name": "x",
                "schema": {"type": "object", "description": f"for {EMAIL}"},
            }
        }
    },
    "image url": {
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "see"},
                    {"type": "input_image", "image_url": f"https://example.com/a.png?u={EMAIL}"},
                ],
            }
        ]
    },
    "split across parts": {
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "card 4111 1111 "},
                    {"type": "input_text", "text": "1111 1111"},
                ],
            }
        ]
    },
    "split across items": {
        "input": [
            {"role": "user", "content": "my card is 4111 1111"},
            {"role": "user", "content": "1111 1111 thanks"},
        ]
    },
    "assistant output text": {
        "input": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "output_text", "text": f"noted {SSN}"}]},
            {"role": "user", "content": "ok"},
        ]
    },
}
RAW = (EMAIL, CARD, SSN, "4111 1111", "jane.doe")


def clean(sent: Any, placeholder: bool = True) -> None:
    """`sent` (what an upstream received) holds no finding and none of the raw values (and a
    placeholder, unless the field is not forwarded at all)."""
    assert isinstance(sent, dict)
    found = gv.scan(sent, "chat", False)
    assert found.findings == {}, (found.findings, sent)
    text = json.dumps(sent, ensure_ascii=False)
    assert [v for v in RAW if v in text] == [], text
    assert ("_REDACTED]" in text) is placeholder


@pytest.mark.parametrize("field", sorted(ODD_FIELDS))
@pytest.mark.parametrize("target", ["pub", "local", "claude"])
def test_pii_in_odd_fields_never_reaches_an_uncleared_model(
    world: dict[str, Any], field: str, target: str
) -> None:
    body: dict[str, Any] = {"model": target, "input": "hello", "max_output_tokens": 20, **ODD_FIELDS[field]}
    r = post(world, PII_KEY, body)
    if target == "claude" and field == "image url":
        # Anthropic takes the (redacted) URL as an image source; the test server validates it
        assert r.status_code in (200, 400), r.text
    else:
        assert r.status_code == 200, r.text
    assert r.headers["x-llmplatform-redacted"] == "true"
    # metadata is not sent to a translated model (responses.to_chat), so nothing to redact there
    placeholder = target == "pub" or not field.startswith("metadata")
    if target == "claude":
        received = httpx.get(world["anthropic"] + "/_received").json()
        assert received, "nothing reached the Anthropic server"
        clean(received[-1]["body"], placeholder)
    else:
        clean(h.mock_stats(world["meter" if target == "pub" else "chatm"])["last_body"], placeholder)
    record = bh.records_of(world["log"], r.headers["x-request-id"])[0]
    assert record["redacted"] is True and record["findings"], record
    assert (record["api"], record["endpoint"]) == ("responses", "chat")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_pii_in_the_answer_is_redacted(world: dict[str, Any], stream: bool) -> None:
    """outputScanning: the answer's text is redacted on the Responses path as on chat, also
    when the address is split across stream deltas (3 characters each)."""
    h.mock_config(world["meter"], reply=f"write to {EMAIL} today", reply_chunk_chars=3)
    r = post(world, DROP_KEY, {"model": "meter", "input": "hello", "stream": stream})
    assert r.status_code == 200
    assert EMAIL not in r.text and "jane.doe" not in r.text
    if stream:
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        assert events[-1]["response"]["output"][0]["content"][0]["text"] == text
    else:
        text = r.json()["output"][0]["content"][0]["text"]
    assert text.startswith("write to [") and text.endswith("_REDACTED] today"), text


# -- 3. disconnects and hostile upstreams -------------------------------------------------------


@pytest.mark.parametrize("target", ["meter", "local", "claude"])
def test_leaving_a_stream_mid_way_is_charged_once(world: dict[str, Any], target: str) -> None:
    if target == "claude":
        # no digits: output scanning (on in this policy) would hold digit runs back
        reply = {"chunks": [f"word{c} " for c in "abcdefghijklmnopqrst"], "delay_ms": 150}
        httpx.post(world["anthropic"] + "/_script", json={"replies": [reply]}).raise_for_status()
    else:
        h.mock_config(
            world["meter" if target == "meter" else "chatm"], chunk_delay_ms=150, completion_tokens=20
        )
    key = DROP_KEY if target == "meter" else PII_KEY
    body = {"model": target, "input": "hello", "max_output_tokens": 20, "stream": True}
    before = bh.usage(world["base"], key)["tokensToday"]
    stream = bh.RawStream(world["base"], "/v1/responses", key, body)
    headers = stream.read_headers()
    deltas: list[str] = []

    def enough(payload: bytes) -> bool:
        event = json.loads(payload)
        if event["type"] == "response.output_text.delta":
            deltas.append(event["delta"])
        return len(deltas) >= 5

    stream.events_until(enough)
    stream.hang_up()
    records = bh.records_of(world["log"], headers["x-request-id"], wait=30)
    assert len(records) == 1, records
    record = records[0]
    assert record["status"] == 499 and record["api"] == "responses", record
    assert record["tokens_in"] > 0 and record["tokens_out"] >= 5, record
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        grown = bh.usage(world["base"], key)["tokensToday"] - before
        if grown == record["tokens_in"] + record["tokens_out"]:
            break
        time.sleep(0.1)
    assert grown == record["tokens_in"] + record["tokens_out"], (grown, record)


@pytest.mark.parametrize("mode", ["garbage_sse", "bad_json_sse", "huge_event"])
def test_hostile_stream_ends_in_band(world: dict[str, Any], mode: str) -> None:
    h.mock_config(world["meter"], hostile=mode, hostile_bytes=512 * 1024)
    r = post(world, DROP_KEY, {"model": "meter", "input": "hello", "stream": True, "max_output_tokens": 10})
    assert r.status_code == 200
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"], kinds
    assert "<html>" not in r.text and "not json" not in r.text
    record = bh.records_of(world["log"], r.headers["x-request-id"])[0]
    assert record["status"] == 502, record


@pytest.mark.parametrize(
    ("mode", "stream"),
    [("redirect", False), ("redirect", True), ("huge_body", False), ("garbage_first", True)],
)
def test_hostile_answer_is_a_clean_error(world: dict[str, Any], mode: str, stream: bool) -> None:
    h.mock_config(world["meter"], hostile=mode, hostile_bytes=2 * UPSTREAM_LIMIT)
    r = post(world, DROP_KEY, {"model": "meter", "input": "hello", "stream": stream, "max_output_tokens": 10})
    assert r.status_code == 502, r.text[:300]
    assert r.json()["error"]["code"] in (
        "upstream_redirect",
        "upstream_response_too_large",
        "upstream_stream_error",
    )
    assert "REDIRECTED" not in r.text
    assert h.mock_stats(world["meter"])["by_path"].get("/_mock/redirected", 0) == 0
