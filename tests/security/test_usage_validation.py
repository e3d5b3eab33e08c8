"""Usage reported by an upstream is validated, never trusted blindly (#12 item 3).

A hostile or broken upstream reports negative, huge, non-integer or missing token counts, or
no usage object at all. The gateway still returns the answer, charges its own count instead
(never less than zero, never more than the reservation), logs a warning naming the request
and nothing of its content, and writes exactly one audit record; the tenant's counters only
ever grow.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import attacks as bh
from llmplatform_testing import gateway as h

KEY = "llmp-sec-usage"
ANTH_KEY = "llmp-sec-usage-anthropic"
SECRET_WORD = "zanzibar-7731"
"""In every prompt: it must never reach the gateway's log."""
MESSAGES: list[Any] = [{"role": "user", "content": f"say something about {SECRET_WORD}"}]

HOSTILE = {
    "negative": '{"prompt_tokens": -5, "completion_tokens": -1000000, "total_tokens": -1000005}',
    "strings": '{"prompt_tokens": "abc", "completion_tokens": "abc", "total_tokens": "abc"}',
    "1e400": '{"prompt_tokens": 1e400, "completion_tokens": 1e400, "total_tokens": 1e400}',
    "floats": '{"prompt_tokens": 3.5, "completion_tokens": 2.0, "total_tokens": 5.5}',
    "bools": '{"prompt_tokens": true, "completion_tokens": true, "total_tokens": true}',
    "huge": '{"prompt_tokens": 1000000000000000000000000000000, "completion_tokens": 99999999999}',
    "over-reservation": '{"prompt_tokens": 5, "completion_tokens": 5000, "total_tokens": 5005}',
    "missing": '{"prompt_tokens": 5}',
    "string": '"lots"',
    "list": "[1, 2]",
}


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("hostile")
    anth_url = gateway_world.anthropic()
    docs = [
        h.model("hostile", url, pricing={"inputPerMillionTokens": 1000, "outputPerMillionTokens": 1000}),
        h.anthropic_model("claude", anth_url),
        h.policy({"standard": ["hostile"], "efficient": ["claude"]}),
        *h.tenant("usage", {"k": KEY}, ["standard"], limits={"costPerMonthUSD": 1000}),
        *h.tenant("usagea", {"k": ANTH_KEY}, ["efficient"], limits={"costPerMonthUSD": 1000}),
    ]
    gateway_world.gateway(docs)
    return gateway_world


def check_charged(world: dict[str, Any], key: str, request_id: str, before: dict[str, Any]) -> dict[str, Any]:
    """One audit record, a sane charge, counters grown by exactly that charge, and a warning
    naming the request without its content."""
    records = bh.records_of(world["log"], request_id)
    assert len(records) == 1, records
    record = records[0]
    assert record["status"] == 200, record
    assert record["tokens_in"] > 0 and 0 < record["tokens_out"] <= 16, record
    assert math.isfinite(record["cost_usd"]) and record["cost_usd"] > 0, record
    after = bh.usage(world["base"], key)
    assert after["tokensToday"] - before["tokensToday"] == record["tokens_in"] + record["tokens_out"]
    assert after["costThisMonthUSD"] > before["costThisMonthUSD"]
    lines = [json.loads(x) for x in world["gw"].log.read_text().splitlines() if x.startswith("{")]
    warned = [x for x in lines if x.get("request_id") == request_id and "usage" in x.get("message", "")]
    assert warned and warned[0]["level"] == "warning", lines[-5:]
    assert SECRET_WORD not in world["gw"].log.read_text()
    return record


def ask(base: str, key: str, model: str, stream: bool) -> tuple[str, str]:
    """One chat request of at most 16 tokens, streamed or not: its request id and the answer's text."""
    c = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    if stream:
        with c.chat.completions.with_streaming_response.create(
            model=model, messages=MESSAGES, max_tokens=16, stream=True
        ) as raw:
            text = "".join((ch.choices[0].delta.content or "") for ch in raw.parse() if ch.choices)
            return raw.headers["x-request-id"], text
    raw_json = c.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, max_tokens=16)
    return raw_json.headers["x-request-id"], raw_json.parse().choices[0].message.content or ""


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_usage_is_replaced_by_the_gateways_count(
    world: dict[str, Any], name: str, stream: bool
) -> None:
    h.mock_config(world["hostile"], usage_json=HOSTILE[name], completion_tokens=16)
    before = bh.usage(world["base"], KEY)
    request_id, text = ask(world["base"], KEY, "auto", stream)
    assert "test" in text  # the answer still reached the client
    check_charged(world, KEY, request_id, before)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    "usage",
    [{"input_tokens": -50, "output_tokens": -1000000}, {"input_tokens": 10**15, "output_tokens": 10**12}],
    ids=["negative", "huge"],
)
def test_hostile_anthropic_usage(world: dict[str, Any], usage: dict[str, int], stream: bool) -> None:
    reply = {"text": "a short and harmless answer", "usage": usage}
    httpx.post(world["anthropic"] + "/_script", json={"replies": [reply]}).raise_for_status()
    before = bh.usage(world["base"], ANTH_KEY)
    request_id, text = ask(world["base"], ANTH_KEY, "claude", stream)
    assert text == "a short and harmless answer"
    check_charged(world, ANTH_KEY, request_id, before)


def test_negative_usage_cannot_lower_a_months_spend(world: dict[str, Any]) -> None:
    """The attack of the issue: upstream usage of -1,000,000 tokens per answer lowered the
    month's spend until any number of requests passed a budget."""
    h.mock_config(world["hostile"], usage_json=HOSTILE["negative"], completion_tokens=16)
    c = openai.OpenAI(base_url=world["base"] + "/v1", api_key=KEY, max_retries=0)
    spent = [bh.usage(world["base"], KEY)["costThisMonthUSD"]]
    for _ in range(5):
        c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=16)
        time.sleep(0.05)
        spent.append(bh.usage(world["base"], KEY)["costThisMonthUSD"])
    assert all(b > a for a, b in itertools.pairwise(spent)), spent
