"""Attacks on the Anthropic Messages API inbound (`/v1/messages`), through the HTTP surface.

The Messages API is a second door to the same models: whatever the chat completions door
refuses, charges or redacts must be refused, charged and redacted here too.
- Budgets: the worst case comes from `max_tokens`, so a huge one is refused before any upstream
  call and concurrent requests cannot overspend a budget; OpenAI-only multipliers (`n`,
  `best_of`, `prediction`, ...) smuggled into a Messages body are refused, not forwarded.
- Per-user limits: `metadata.user_id` is the Messages API's `user`, so a plain key that varies it
  still gets only its own user's share.
- Personal data hidden where the Messages API puts text (system blocks split mid-value, tool
  results holding JSON with escaped characters, tool inputs, tool definitions) never reaches
  either upstream.
- A client that leaves a Messages stream is charged what it was sent and audited once (499).

Requests to an Anthropic model (`claude`) are passed through as Messages requests rather than
translated, so each attack is also made against that path: the pass-through forwards the
client's body, which makes what the check lets into it (and what it refuses) the whole defence.
An Anthropic model's reported usage is checked like any upstream's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import anthropic
import httpx
import pytest

from llmplatform_testing import attacks as bh
from llmplatform_testing import gateway as h

DROP_KEY = "llmp-sec-msg-drop"
ANTH_KEY = "llmp-sec-msg-drop-anthropic"
BUDGET_KEY = "llmp-sec-msg-budget"
BUDGET_A_KEY = "llmp-sec-msg-budget-anthropic"
USERS_KEY = "llmp-sec-msg-users"
USERS_A_KEY = "llmp-sec-msg-users-anthropic"
TRUSTED_KEY = "llmp-sec-msg-trusted"
PII_KEY = "llmp-sec-msg-pii"
STRICT_KEY = "llmp-sec-msg-strict"
HELLO: list[Any] = [{"role": "user", "content": "hello"}]
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("meter")
    anth_url = gateway_world.anthropic()
    pricing = {"inputPerMillionTokens": 1000, "outputPerMillionTokens": 1000}
    strict_policy = h.policy({"specialized": ["guarded"]}, dataGovernance={"piiRedaction": False})
    strict_policy["metadata"]["name"], strict_policy["spec"]["default"] = "strict", False
    docs = [
        h.model("meter", url, pricing=pricing),
        h.anthropic_model("claude", anth_url, pricing=pricing),
        h.model(
            "pricey",
            url,
            tier="premium",
            contextWindow=200000,
            pricing={"inputPerMillionTokens": 100, "outputPerMillionTokens": 100},
        ),
        h.policy(
            {"standard": ["meter"], "efficient": ["claude"], "premium": ["pricey"]},
            timeouts={"connectSeconds": 2, "requestSeconds": 20, "streamIdleSeconds": 10},
            dataGovernance={"piiRedaction": True},
        ),
        *h.tenant("drop", {"k": DROP_KEY}, ["standard"]),
        *h.tenant("dropa", {"k": ANTH_KEY}, ["efficient"]),
        *h.tenant("budget", {"k": BUDGET_KEY}, ["premium"], limits={"costPerMonthUSD": 1}),
        *h.tenant("budgeta", {"k": BUDGET_A_KEY}, ["efficient"], limits={"costPerMonthUSD": 1}),
        *h.tenant(
            "users",
            {"k": USERS_KEY},
            ["standard"],
            limits={"requestsPerMinute": 100},
            userLimits={"requestsPerMinute": 3},
        ),
        *h.tenant(
            "usersa",
            {"k": USERS_A_KEY},
            ["efficient"],
            limits={"requestsPerMinute": 100},
            userLimits={"requestsPerMinute": 3},
        ),
        *h.tenant("pii", {"k": PII_KEY}, ["standard", "efficient"]),
        *h.tenant(
            "trusted",
            {"k": TRUSTED_KEY},
            ["efficient"],
            trust_client_user=True,
            limits={"requestsPerMinute": 100},
            userLimits={"requestsPerMinute": 2},
        ),
        h.model("guarded", url, tier="specialized", maxDataClassification="internal"),
        strict_policy,
        *h.tenant(
            "strict",
            {"k": STRICT_KEY},
            ["specialized"],
            routingPolicy={"name": "strict", "namespace": h.PLATFORM},
        ),
    ]
    gateway_world.gateway(docs)
    return gateway_world


def client(world: h.World, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=world["base"], api_key=key, max_retries=0)


def post(world: h.World, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(world["base"] + "/v1/messages", headers={"x-api-key": key}, json=body, timeout=60)


def anthropic_received(world: h.World) -> list[dict[str, Any]]:
    """What the Anthropic test server was sent since its last reset (bodies, validity)."""
    seen: list[dict[str, Any]] = httpx.get(world["anthropic"] + "/_received").json()
    return seen


def reset_anthropic(world: h.World, *replies: dict[str, Any]) -> None:
    httpx.post(world["anthropic"] + "/_reset").raise_for_status()
    if replies:
        httpx.post(world["anthropic"] + "/_script", json={"replies": list(replies)}).raise_for_status()


# -- budgets and limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "model", "max_tokens"), [(BUDGET_KEY, "pricey", 20000), (BUDGET_A_KEY, "claude", 8000)]
)
def test_a_max_tokens_beyond_the_budget_is_refused_before_the_upstream(
    world: h.World, key: str, model: str, max_tokens: int
) -> None:
    h.mock_config(world["meter"])
    reset_anthropic(world)
    # 20000 output tokens at 100 USD per million is 2 USD (pricey), 8000 at 1000 USD per
    # million 8 USD (claude): more than the whole 1 USD budget
    r = post(world, key, {"model": model, "max_tokens": max_tokens, "messages": HELLO})
    assert r.status_code == 429, r.text
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"
    assert h.mock_stats(world["meter"])["requests"] == 0 and anthropic_received(world) == []


@pytest.mark.parametrize(
    "smuggled",
    [
        {"n": 10},
        {"best_of": 10},
        {"prediction": {"type": "content", "content": "x" * 1000}},
        {"audio": {"voice": "alloy", "format": "wav"}},
        {"web_search_options": {}},
        {"max_completion_tokens": 100000},
        {"stream_options": {"include_usage": False}},
    ],
    ids=lambda s: next(iter(s)),
)
def test_openai_only_parameters_cannot_ride_along(world: dict[str, Any], smuggled: dict[str, Any]) -> None:
    h.mock_config(world["meter"])
    r = post(world, DROP_KEY, {"model": "meter", "max_tokens": 4, "messages": HELLO, **smuggled})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert next(iter(smuggled)) in r.json()["error"]["message"]
    assert h.mock_stats(world["meter"])["requests"] == 0


@pytest.mark.parametrize(
    "smuggled",
    [
        {"service_tier": "auto"},  # a priced tier of its own
        {"speed": "fast"},
        {"inference_geo": "us"},  # where the data is processed: the platform's rules decide that
        {"container": "container_1"},
        {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}]},
        {"context_management": {"edits": []}},
        {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 50}]},
        {"thinking": {"type": "enabled", "budget_tokens": 20000}},
        {"n": 10},
        {"top_k": 5},
    ],
    ids=lambda s: next(iter(s)) if "tools" not in s else "server_tool",
)
def test_what_a_passthrough_would_carry_to_anthropic_is_checked_first(
    world: h.World, smuggled: dict[str, Any]
) -> None:
    """The body goes to an Anthropic model as the client sent it, so a field that bills or
    routes beyond what the platform reserved and decided is refused before it can leave."""
    reset_anthropic(world)
    r = post(world, PII_KEY, {"model": "claude", "max_tokens": 4, "messages": HELLO, **smuggled})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert anthropic_received(world) == []


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_concurrent_requests_cannot_overspend_a_budget(world: h.World, provider: str) -> None:
    """Each request reserves about 0.45 USD (4500 output tokens at 100 USD per million on
    pricey, 450 at 1000 USD per million on claude, passed through) and the upstream reports
    every one of them used: of ten at once, at most two fit the 1 USD budget."""
    h.mock_config(world["meter"])
    if provider == "openai":
        key, body = BUDGET_KEY, {"model": "pricey", "max_tokens": 4500, "messages": HELLO}
    else:
        used = {"text": "spent", "usage": {"input_tokens": 8, "output_tokens": 450}}
        reset_anthropic(world, *[used] * 10)
        key, body = BUDGET_A_KEY, {"model": "claude", "max_tokens": 450, "messages": HELLO}
    last: list[str] = []

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=10)) as c:

            async def one() -> int:
                r = await c.post(world["base"] + "/v1/messages", json=body, headers={"x-api-key": key})
                last.append(r.text)
                return r.status_code

            return list(await asyncio.gather(*(one() for _ in range(10))))

    statuses = asyncio.run(burst())
    assert set(statuses) <= {200, 429}, statuses
    assert 1 <= statuses.count(200) <= 2, (statuses, last)
    time.sleep(0.5)
    assert bh.usage(world["base"], key)["costThisMonthUSD"] <= 1.0
    if provider == "anthropic":  # passed through, and only the admitted ones
        assert len(anthropic_received(world)) == statuses.count(200)


@pytest.mark.parametrize(
    ("key", "model", "tenant"), [(USERS_KEY, "meter", "users"), (USERS_A_KEY, "claude", "usersa")]
)
def test_metadata_user_id_does_not_escape_the_per_user_limit(
    world: h.World, key: str, model: str, tenant: str
) -> None:
    left = 60 - time.time() % 60  # calendar-minute windows: do not straddle two
    if left < 15:
        time.sleep(left + 0.05)
    statuses = [
        post(
            world,
            key,
            {"model": model, "max_tokens": 2, "messages": HELLO, "metadata": {"user_id": f"u-{i}"}},
        ).status_code
        for i in range(8)
    ]
    assert statuses == [200] * 3 + [429] * 5, statuses
    time.sleep(0.5)
    users = {r["user"] for r in bh.audit_records(world["log"]) if r.get("tenant") == f"{tenant}/{tenant}"}
    assert users == {f"k@{tenant}"}


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 3, "output_tokens": 1_000_000},  # more output than was reserved
        {"input_tokens": 10**9, "output_tokens": 1},  # more prompt than the request could hold
    ],
    ids=["output", "input"],
)
def test_an_anthropic_models_unbelievable_usage_is_not_charged(world: h.World, usage: dict[str, int]) -> None:
    """Usage read from a passed-through Messages answer is validated like any upstream's: an
    impossible count is not charged (nor shown); the gateway's own count is."""
    reset_anthropic(world, {"text": "a short answer", "usage": usage})
    r = post(world, PII_KEY, {"model": "claude", "max_tokens": 20, "messages": HELLO})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["output_tokens"] <= 20 and r.json()["usage"]["input_tokens"] < 1000
    record = bh.records_of(world["log"], r.headers["x-request-id"])[0]
    assert 0 < record["tokens_out"] <= 20 and 0 < record["tokens_in"] < 1000, record
    assert record["cost_usd"] < 0.1, record


def test_a_trusted_keys_end_users_are_limited_apart_and_sent_opaque(world: h.World) -> None:
    """For a trustClientUser key `metadata.user_id` names the end user: each gets its own
    userLimits share, is audited by name, and reaches the Anthropic model only as a hash."""
    left = 60 - time.time() % 60
    if left < 15:
        time.sleep(left + 0.05)
    reset_anthropic(world)

    def ask(user: str) -> int:
        body = {"model": "claude", "max_tokens": 2, "messages": HELLO, "metadata": {"user_id": user}}
        return post(world, TRUSTED_KEY, body).status_code

    statuses = [ask("end-user-a") for _ in range(3)] + [ask("end-user-b")]
    assert statuses == [200, 200, 429, 200], statuses
    sent = [r["body"]["metadata"]["user_id"] for r in anthropic_received(world)]
    assert sent == [hashlib.sha256(u.encode()).hexdigest() for u in ("end-user-a",) * 2 + ("end-user-b",)]
    time.sleep(0.5)
    users = [r["user"] for r in bh.audit_records(world["log"]) if r.get("tenant") == "trusted/trusted"]
    assert sorted(users) == ["end-user-a"] * 3 + ["end-user-b"], users


# -- personal data where the Messages API hides text ---------------------------------------------


HIDING_PLACES: list[tuple[str, dict[str, Any]]] = [
    (
        "system blocks split mid-address",
        {
            "system": [
                {"type": "text", "text": "Escalate to jane.doe@"},
                {"type": "text", "text": "example.com now"},
            ]
        },
    ),
    (
        "system string and the first turn split mid-address",
        {"system": "Escalate to jane.doe@", "messages": [{"role": "user", "content": "example.com now"}]},
    ),
    ("stop sequences", {"stop_sequences": [f"mail {EMAIL}", CARD]}),
    ("end-user id", {"metadata": {"user_id": EMAIL}}),
    (
        "tool result holding escaped JSON",
        {
            "messages": [
                {"role": "user", "content": "card?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            # the card number, every digit written as a JSON escape
                            "content": json.dumps(
                                {"card": "".join(f"\\u{ord(c):04x}" for c in CARD)}
                            ).replace("\\\\", "\\"),
                        }
                    ],
                },
            ],
            "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
        },
    ),
    (
        "tool result text blocks",
        {
            "messages": [
                {"role": "user", "content": "who?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t2", "name": "lookup", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t2",
                            "content": [{"type": "text", "text": f"mail {EMAIL}"}],
                        }
                    ],
                },
            ],
            "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
        },
    ),
    (
        "tool input, deep",
        {
            "messages": [
                {"role": "user", "content": "pay"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "t3", "name": "pay", "input": {"card": {"number": CARD}}}
                    ],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t3", "content": "ok"}]},
            ],
            "tools": [{"name": "pay", "input_schema": {"type": "object"}}],
        },
    ),
    (
        "tool definition",
        {
            "messages": HELLO,
            "tools": [
                {
                    "name": "notify",
                    "description": f"sends mail to {EMAIL}",
                    "input_schema": {
                        "type": "object",
                        "properties": {"to": {"type": "string", "default": EMAIL}},
                    },
                }
            ],
        },
    ),
]


@pytest.mark.parametrize("model", ["meter", "claude"])
@pytest.mark.parametrize(("place", "extra"), HIDING_PLACES, ids=[p for p, _ in HIDING_PLACES])
def test_personal_data_is_redacted_wherever_it_hides(
    world: h.World, model: str, place: str, extra: dict[str, Any]
) -> None:
    h.mock_config(world["meter"])
    httpx.post(world["anthropic"] + "/_reset").raise_for_status()
    body = {"model": model, "max_tokens": 4, "messages": HELLO, **extra}
    r = post(world, PII_KEY, body)
    assert r.status_code == 200, r.text
    assert r.headers["x-llmplatform-redacted"] == "true"
    if model == "meter":
        sent = json.dumps(h.mock_stats(world["meter"])["last_body"])
    else:
        seen = httpx.get(world["anthropic"] + "/_received").json()
        assert seen and seen[-1]["valid"], seen
        sent = json.dumps(seen[-1]["body"])
    decoded = json.loads(json.dumps(sent))  # JSON escapes of the strings inside it, as text
    for value in (EMAIL, CARD, "example.com", "1111 1111"):
        assert value not in sent and value not in decoded, (place, sent)
    assert "\\u0034\\u0031" not in sent.lower()


def test_classification_rules_refuse_what_no_model_may_receive(world: h.World) -> None:
    """Without redaction, a card number in a tool result makes the request restricted, and the
    only model may receive internal data at most: 403 `permission_error`, nothing forwarded."""
    h.mock_config(world["meter"])
    deep = next(extra for place, extra in HIDING_PLACES if place == "tool input, deep")
    body = dict(deep, model="guarded", max_tokens=4)
    r = post(world, STRICT_KEY, body)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["type"] == "permission_error"
    assert r.headers["x-llmplatform-data-classification"] == "restricted"
    assert h.mock_stats(world["meter"])["requests"] == 0
    ok = post(world, STRICT_KEY, {"model": "guarded", "max_tokens": 4, "messages": HELLO})
    assert ok.status_code == 200 and ok.json()["type"] == "message"


# -- leaving a stream ----------------------------------------------------------------------------


def text_of(payload: bytes) -> str:
    event = json.loads(payload)
    return (
        str((event.get("delta") or {}).get("text") or "")
        if event.get("type") == "content_block_delta"
        else ""
    )


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_leaving_a_messages_stream_is_charged_and_audited_once(world: h.World, provider: str) -> None:
    base, key, tenant = (
        world["base"],
        (DROP_KEY, ANTH_KEY)[provider == "anthropic"],
        ("drop", "dropa")[provider == "anthropic"],
    )
    if provider == "openai":
        h.mock_config(world["meter"], chunk_delay_ms=150, completion_tokens=20)
    else:
        chunks = [f"word{i} " for i in range(20)]
        httpx.post(
            world["anthropic"] + "/_script", json={"replies": [{"chunks": chunks, "delay_ms": 150}]}
        ).raise_for_status()
    body = {
        "model": ("meter", "claude")[provider == "anthropic"],
        "max_tokens": 20,
        "stream": True,
        "messages": HELLO,
    }
    before = bh.usage(base, key)["tokensToday"]
    stream = bh.RawStream(base, "/v1/messages", key, body)
    headers = stream.read_headers()
    assert headers["content-type"].startswith("text/event-stream")
    texts: list[str] = []

    def enough(payload: bytes) -> bool:
        if text_of(payload):
            texts.append(text_of(payload))
        return len(texts) >= 5

    stream.events_until(enough)
    stream.hang_up()
    if provider == "anthropic":  # the stream was passed through (a translation makes blocks)
        assert anthropic_received(world)[-1]["body"]["messages"] == HELLO
    records = bh.records_of(world["log"], headers["x-request-id"], wait=20)
    assert len(records) == 1, records
    record = records[0]
    assert (record["status"], record["tenant"]) == (499, f"{tenant}/{tenant}"), record
    assert record["tokens_in"] > 0 and record["tokens_out"] >= 5 and record["cost_usd"] > 0, record
    assert record["tokens_out"] < 20  # charged what was relayed, not the whole answer
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        grown = bh.usage(base, key)["tokensToday"] - before
        if grown == record["tokens_in"] + record["tokens_out"]:
            break
        time.sleep(0.1)
    assert grown == record["tokens_in"] + record["tokens_out"], (grown, record)
