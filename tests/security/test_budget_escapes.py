"""Budget escapes (#12 items 1 and 2), attacked through the gateway's HTTP surface.

1. A client that leaves a stream (before its first chunk, in the middle, after the last chunk
   but before `[DONE]`) is charged what it was sent, the charge is settled into the tenant's
   counters, and the 499's one audit record says so; chat and completions, OpenAI and
   Anthropic upstreams.
2. The reservation covers the request as sent: `n`, `best_of`, prompt lists, `echo`,
   `prediction`, and the model's maxOutputTokens when max_tokens is absent; concurrent n=10
   requests cannot overspend a 1 USD budget; parameters whose cost model pricing cannot
   express are refused.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import attacks as bh
from llmplatform_testing import gateway as h

DROP_KEY = "llmp-sec-drop"
ANTH_KEY = "llmp-sec-drop-anthropic"
BUDGET_KEY = "llmp-sec-budget"
BUDGET_C_KEY = "llmp-sec-budget-completions"
SHAPE_KEY = "llmp-sec-shape"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("meter")
    anth_url = gateway_world.anthropic()
    pricing = {"inputPerMillionTokens": 1000, "outputPerMillionTokens": 1000}
    docs = [
        h.model("meter", url, pricing=pricing),
        h.anthropic_model("claude", anth_url, pricing=pricing),
        h.model(
            "pricey",
            url,
            tier="premium",
            maxOutputTokens=4,
            pricing={"inputPerMillionTokens": 10000, "outputPerMillionTokens": 10000},
        ),
        h.policy(
            {"standard": ["meter"], "efficient": ["claude"], "premium": ["pricey"]},
            timeouts={"connectSeconds": 2, "requestSeconds": 20, "streamIdleSeconds": 10},
        ),
        *h.tenant("drop", {"k": DROP_KEY}, ["standard"]),
        *h.tenant("dropa", {"k": ANTH_KEY}, ["efficient"]),
        *h.tenant("budget", {"k": BUDGET_KEY}, ["premium"], limits={"costPerMonthUSD": 1}),
        *h.tenant("budgetc", {"k": BUDGET_C_KEY}, ["premium"], limits={"costPerMonthUSD": 1}),
        *h.tenant("shape", {"k": SHAPE_KEY}, ["standard"], limits={"tokensPerDay": 1000}),
    ]
    gateway_world.gateway(docs)
    return gateway_world


# -- 1. leaving a stream ----------------------------------------------------------------------


def content_of(payload: bytes) -> str:
    if payload == b"[DONE]":
        return ""
    choice = (json.loads(payload).get("choices") or [{}])[0]
    return str(choice.get("text") or (choice.get("delta") or {}).get("content") or "")


ANTHROPIC_CHUNKS = [f"word{i} " for i in range(20)]


def finished(payload: bytes) -> bool:
    if payload == b"[DONE]":
        return True
    choices = json.loads(payload).get("choices") or [{}]
    return choices[0].get("finish_reason") is not None


def tenant_records(audit: Path, tenant: str) -> list[dict[str, Any]]:
    return [
        r
        for r in bh.audit_records(audit)
        if r.get("kind") == "request" and r.get("tenant") == f"{tenant}/{tenant}"
    ]


CASES = [
    (provider, endpoint, point)
    for provider, endpoint in (("openai", "chat"), ("openai", "completions"), ("anthropic", "chat"))
    for point in ("before_first", "mid", "after_last")
]


@pytest.mark.parametrize(("provider", "endpoint", "point"), CASES)
def test_leaving_a_stream_is_charged_and_audited(
    world: dict[str, Any], provider: str, endpoint: str, point: str
) -> None:
    base, key = world["base"], (DROP_KEY if provider == "openai" else ANTH_KEY)
    if provider == "openai":
        h.mock_config(
            world["meter"],
            latency_ms=1500 if point == "before_first" else 0,
            chunk_delay_ms=150 if point == "mid" else 0,
            done_delay_ms=1500 if point == "after_last" else 0,
            completion_tokens=20,
            usage_json=None,
        )
    else:
        reply: dict[str, Any] = {"chunks": ANTHROPIC_CHUNKS}
        reply.update(
            {"before_first": {"start_delay_ms": 1500}, "mid": {"delay_ms": 150}}.get(point)
            or {"stop_delay_ms": 1500}
        )
        httpx.post(world["anthropic"] + "/_script", json={"replies": [reply]}).raise_for_status()
    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    body: dict[str, Any] = {
        "model": "meter" if provider == "openai" else "claude",
        "stream": True,
        "max_tokens": 20,
    }
    body.update({"messages": MESSAGES} if endpoint == "chat" else {"prompt": "hello"})
    before = bh.usage(base, key)["tokensToday"]

    tenant = "drop" if provider == "openai" else "dropa"
    earlier = len(tenant_records(world["log"], tenant))
    stream = bh.RawStream(base, path, key, body)
    seen: list[bytes] = []
    if point == "before_first":
        time.sleep(0.3)  # the upstream has the request; nothing has come back yet
    else:
        stream.read_headers()
        texts: list[str] = []

        def enough(payload: bytes) -> bool:
            if content_of(payload):
                texts.append(content_of(payload))
            if point == "after_last":
                # The test upstream pauses after the last content: the OpenAI mock after its
                # finish chunk, the Anthropic server before message_delta (which becomes the
                # finish chunk, [DONE] right behind it), so there the last text delta is the point.
                return finished(payload) if provider == "openai" else len(texts) == len(ANTHROPIC_CHUNKS)
            return len(texts) >= 5

        seen = stream.events_until(enough)
    stream.hang_up()

    deadline = time.monotonic() + 20
    while len(tenant_records(world["log"], tenant)) == earlier and time.monotonic() < deadline:
        time.sleep(0.1)
    request_id = tenant_records(world["log"], tenant)[-1]["request_id"]
    records = bh.records_of(world["log"], request_id)
    assert len(records) == 1, records
    record = records[0]
    assert record["status"] == 499, record
    assert record["tokens_in"] > 0 and record["cost_usd"] > 0, record
    sent = sum(1 for p in seen if content_of(p))
    if point != "before_first":
        assert sent >= 5 if point == "mid" else sent >= 10
        assert record["tokens_out"] >= sent, (record, sent)
    # settled: the tenant's counter grew by exactly what the record charges
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        grown = bh.usage(base, key)["tokensToday"] - before
        if grown == record["tokens_in"] + record["tokens_out"]:
            break
        time.sleep(0.1)
    assert grown == record["tokens_in"] + record["tokens_out"], (grown, record)


# -- 2. the worst case of the request as sent -----------------------------------------------


async def concurrent(base: str, key: str, path: str, body: dict[str, Any], count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count)) as c:

        async def one() -> int:
            r = await c.post(base + path, json=body, headers={"Authorization": f"Bearer {key}"})
            return r.status_code

        return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.mark.parametrize(
    ("key", "tenant", "path", "body"),
    [
        (BUDGET_KEY, "budget", "/v1/chat/completions", {"messages": MESSAGES, "n": 10}),
        (BUDGET_C_KEY, "budgetc", "/v1/completions", {"prompt": "hello", "best_of": 10, "max_tokens": 4}),
    ],
    ids=["chat-n10-no-max-tokens", "completions-best-of-10"],
)
def test_concurrent_multiplied_requests_cannot_overspend_a_budget(
    world: dict[str, Any], key: str, tenant: str, path: str, body: dict[str, Any]
) -> None:
    """Each request costs about 0.45 USD once its 10 choices are billed (the model's
    maxOutputTokens, 4, per choice at 0.01 USD a token); counted once, about 0.13 USD would
    have been reserved and 7 of 12 admitted (3.4 USD spent)."""
    # the mock model's real maximum output is its declared maxOutputTokens (4)
    h.mock_config(
        world["meter"],
        latency_ms=300,
        chunk_delay_ms=0,
        done_delay_ms=0,
        usage_json=None,
        completion_tokens=4,
    )
    statuses = asyncio.run(concurrent(world["base"], key, path, {"model": "pricey", **body}, 12))
    assert statuses.count(200) >= 1, statuses
    assert set(statuses) <= {200, 429}, statuses
    spent = bh.usage(world["base"], key)["costThisMonthUSD"]
    time.sleep(0.5)
    audited = sum(r["cost_usd"] for r in tenant_records(world["log"], tenant))
    assert audited == pytest.approx(spent, abs=1e-4)  # counters round each request up to 1e-6
    assert 0.4 <= spent <= 1.0, (spent, statuses)


def shape_status(world: dict[str, Any], path: str, body: dict[str, Any]) -> int:
    r = httpx.post(
        world["base"] + path,
        json={"model": "auto", **body},
        headers={"Authorization": f"Bearer {SHAPE_KEY}"},
        timeout=30,
    )
    return r.status_code


@pytest.mark.parametrize(
    ("path", "plain", "multiplied"),
    [
        ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 50}, {"n": 20}),
        ("/v1/completions", {"prompt": "hello", "max_tokens": 50}, {"n": 20}),
        ("/v1/completions", {"prompt": "hello", "max_tokens": 50}, {"best_of": 20}),
        ("/v1/completions", {"prompt": "hello", "max_tokens": 50}, {"prompt": ["hello"] * 20}),
        ("/v1/completions", {"prompt": "x" * 600, "max_tokens": 50}, {"echo": True, "n": 4}),
        (
            "/v1/chat/completions",
            {"messages": MESSAGES, "max_tokens": 50},
            {"prediction": {"type": "content", "content": "y" * 3000}},
        ),
        ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 50}, {"max_completion_tokens": 2000}),
        ("/v1/embeddings", {"input": "hello"}, {"input": ["hello " * 30] * 40}),
    ],
    ids=["chat-n", "completions-n", "best_of", "prompt-list", "echo", "prediction", "max-both", "inputs"],
)
def test_every_multiplier_is_in_the_reservation(
    world: dict[str, Any], path: str, plain: dict[str, Any], multiplied: dict[str, Any]
) -> None:
    """With 1000 tokens a day, the plain request fits and the multiplied one cannot: its worst
    case alone is over the limit, so it is refused before the upstream is called."""
    h.mock_config(world["meter"], latency_ms=0, usage_json=None, completion_tokens=16)
    assert shape_status(world, path, plain) == 200
    before = h.mock_stats(world["meter"])["requests"]
    assert shape_status(world, path, {**plain, **multiplied}) == 429
    assert h.mock_stats(world["meter"])["requests"] == before


@pytest.mark.parametrize(
    ("path", "extra", "param"),
    [
        ("/v1/chat/completions", {"n": 0}, "n"),
        ("/v1/chat/completions", {"n": 129}, "n"),
        ("/v1/chat/completions", {"n": "10"}, "n"),
        ("/v1/chat/completions", {"n": True}, "n"),
        ("/v1/chat/completions", {"n": 2.5}, "n"),
        ("/v1/completions", {"best_of": 1, "n": 3}, "best_of"),
        ("/v1/completions", {"best_of": 21}, "best_of"),
        ("/v1/chat/completions", {"max_completion_tokens": -1}, "max_completion_tokens"),
        ("/v1/chat/completions", {"max_tokens": 1e9}, "max_tokens"),
        ("/v1/chat/completions", {"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ("/v1/chat/completions", {"modalities": ["text", "audio"]}, "modalities"),
        ("/v1/chat/completions", {"web_search_options": {}}, "web_search_options"),
    ],
)
def test_multipliers_the_gateway_cannot_reserve_for_are_refused(
    world: dict[str, Any], path: str, extra: dict[str, Any], param: str
) -> None:
    c = openai.OpenAI(base_url=world["base"] + "/v1", api_key=SHAPE_KEY, max_retries=0)
    base: dict[str, Any] = {"messages": MESSAGES} if "chat" in path else {"prompt": "hello"}
    with pytest.raises(openai.BadRequestError) as caught:
        c.post(path.removeprefix("/v1"), body={"model": "auto", **base, **extra}, cast_to=httpx.Response)
    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict) and caught.value.body.get("param") == param, caught.value.body
