"""The official `openai` client, sync and async, against a real gateway and mock upstreams.

Every endpoint in docs/spec.md, streaming and not, and every error status the client maps to an
exception class, so "drop-in OpenAI endpoint" is checked by the client users actually run.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing.procs import wait_for

KEY_A = "llmp-test-team-a-key"
KEY_B = "llmp-test-team-b-key"


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    alpha_url = gateway_world.mock("alpha")
    gamma_url = gateway_world.mock("gamma")
    docs = [
        h.model("alpha", alpha_url, pricing={"inputPerMillionTokens": 1, "outputPerMillionTokens": 2}),
        h.model("gamma", gamma_url, tier="efficient", contextWindow=100, capabilities=["chat"]),
        h.policy({"standard": ["alpha"], "efficient": ["gamma"]}),
        *h.tenant(
            "team-a", {"alice": KEY_A}, ["standard", "efficient"], userLimits={"requestsPerMinute": 1000}
        ),
        *h.tenant("team-b", {"bob": KEY_B}, ["efficient"]),
    ]
    gateway_world.gateway(docs, "--max-body-bytes", "100000")
    return gateway_world


def client(world: dict[str, Any], key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=world["base"] + "/v1", api_key=key, max_retries=0)


MESSAGES: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


def test_chat_completion_json(world: dict[str, Any]) -> None:
    raw = client(world).chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES, max_tokens=5
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "this is a test reply "
    assert completion.usage is not None and completion.usage.completion_tokens == 5
    assert raw.headers["x-llmplatform-model"] == "alpha"
    assert raw.headers["x-llmplatform-tier"] == "standard"
    assert raw.headers["x-llmplatform-fallback-level"] == "0"
    assert raw.headers["x-ratelimit-limit-requests"] == "1000"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < 1000
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    # what reached the upstream: its own model id, its key, our request id, unknown fields kept
    seen = h.mock_stats(world["alpha"])
    assert seen["last_body"]["model"] == "alpha"
    assert seen["last_headers"]["authorization"] == f"Bearer {h.UPSTREAM_KEY}"
    assert seen["last_headers"]["x-request-id"] == raw.headers["x-request-id"]


def test_unknown_fields_pass_through_and_request_id_propagates(world: dict[str, Any]) -> None:
    c = client(world)
    c.chat.completions.create(
        model="alpha",
        messages=MESSAGES,
        extra_body={"vendor_knob": {"x": 1}, "logit_bias": {"1": 2}},
        extra_headers={"x-request-id": "req-fixed-123"},
    )
    seen = h.mock_stats(world["alpha"])
    assert seen["last_body"]["vendor_knob"] == {"x": 1}
    assert seen["last_body"]["logit_bias"] == {"1": 2}
    # the upstream gets the gateway's own (unique) id; the client's is recorded beside it
    assert seen["last_headers"]["x-request-id"] != "req-fixed-123"
    audit_log = world["log"]

    def audited() -> bool:  # the sink flushes every 0.1 s
        lines = audit_log.read_text().splitlines()
        return any(
            json.loads(line).get("client_request_id") == "req-fixed-123"
            and json.loads(line).get("request_id") == seen["last_headers"]["x-request-id"]
            for line in lines
        )

    wait_for(audited, 3, "the audit record of the request")


def test_chat_stream_with_usage(world: dict[str, Any]) -> None:
    stream = client(world).chat.completions.create(
        model="standard", messages=MESSAGES, max_tokens=4, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "this is a test "
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_chat_stream_without_usage_hides_usage_chunk(world: dict[str, Any]) -> None:
    chunks = list(
        client(world).chat.completions.create(model="alpha", messages=MESSAGES, max_tokens=3, stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    # the gateway still asked upstream for usage, to settle budgets
    assert h.mock_stats(world["alpha"])["last_body"]["stream_options"] == {"include_usage": True}


def test_completions_json_and_stream(world: dict[str, Any]) -> None:
    c = client(world)
    done = c.completions.create(model="alpha", prompt="say hi", max_tokens=2)
    assert done.choices[0].text == "this is "
    pieces = list(c.completions.create(model="alpha", prompt="say hi", max_tokens=3, stream=True))
    assert "".join(p.choices[0].text for p in pieces if p.choices) == "this is a "


def test_embeddings(world: dict[str, Any]) -> None:
    result = client(world).embeddings.create(model="alpha", input=["one", "two"])
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    assert result.usage.prompt_tokens > 0


def test_models_lists_only_what_the_key_may_use(world: dict[str, Any]) -> None:
    assert sorted(m.id for m in client(world).models.list()) == ["alpha", "gamma"]
    assert [m.id for m in client(world, KEY_B).models.list()] == ["gamma"]


def test_async_client_json_and_stream(world: dict[str, Any]) -> None:
    async def run() -> tuple[str, str]:
        c = openai.AsyncOpenAI(base_url=world["base"] + "/v1", api_key=KEY_A, max_retries=0)
        done = await c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=2)
        stream = await c.chat.completions.create(model="auto", messages=MESSAGES, max_tokens=2, stream=True)
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        await c.close()
        return done.choices[0].message.content or "", "".join(parts)

    done, streamed = asyncio.run(run())
    assert done == streamed == "this is "


def test_401_missing_and_unknown_key(world: dict[str, Any]) -> None:
    with pytest.raises(openai.AuthenticationError) as exc:
        client(world, "not-a-key").chat.completions.create(model="auto", messages=MESSAGES)
    assert exc.value.status_code == 401
    assert exc.value.code == "invalid_api_key"
    r = httpx.post(world["base"] + "/v1/chat/completions", json={"model": "auto", "messages": MESSAGES})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


def test_403_tier_not_allowed(world: dict[str, Any]) -> None:
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client(world, KEY_B).chat.completions.create(model="alpha", messages=MESSAGES)
    assert exc.value.code == "tier_not_allowed"


def test_404_unknown_model(world: dict[str, Any]) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client(world).chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert exc.value.code == "model_not_found"
    assert exc.value.param == "model"


def test_400_bad_requests(world: dict[str, Any]) -> None:
    c = client(world)
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="auto", messages="not a list")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as exc:
        c.embeddings.create(model="gamma", input="x")  # gamma has no embeddings capability
    assert exc.value.code == "unsupported_capability"
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="gamma", messages=[{"role": "user", "content": "x" * 600}])
    assert exc.value.code == "context_length_exceeded"
    headers = {"Authorization": f"Bearer {KEY_A}", "content-type": "application/json"}
    r = httpx.post(
        world["base"] + "/v1/chat/completions", content=b'{"model": "auto", "messages": [', headers=headers
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = httpx.post(world["base"] + "/v1/chat/completions", content=b"[1, 2]", headers=headers)
    assert r.status_code == 400


def test_413_body_over_limit(world: dict[str, Any]) -> None:
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 200_000}]}
    with pytest.raises(openai.APIStatusError) as exc:
        client(world).chat.completions.create(**big)
    assert exc.value.status_code == 413
    assert exc.value.code == "request_too_large"


def test_413_chunked_body_over_limit(world: dict[str, Any]) -> None:
    def chunks() -> Any:  # no Content-Length: the limit must hold while reading
        yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
        for _ in range(30):
            yield b"x" * 10_000
        yield b'"}]}'

    r = httpx.post(
        world["base"] + "/v1/chat/completions", content=chunks(), headers={"Authorization": f"Bearer {KEY_A}"}
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_unknown_path_is_openai_shaped(world: dict[str, Any]) -> None:
    r = httpx.get(world["base"] + "/v1/nope")
    assert r.status_code == 404 and "error" in r.json()


def test_upstream_key_never_returned_or_logged(world: dict[str, Any]) -> None:
    r = httpx.get(world["base"] + "/metrics")
    assert h.UPSTREAM_KEY not in r.text
    assert h.UPSTREAM_KEY not in world["gw"].log.read_text()
    assert h.UPSTREAM_KEY not in (world["tmp"] / "gw-audit.jsonl").read_text()


def test_health_ready_metrics(world: dict[str, Any]) -> None:
    assert httpx.get(world["base"] + "/healthz").status_code == 200
    ready = httpx.get(world["base"] + "/readyz").json()
    assert ready["ready"] is True and ready["limiter"] == "local"
    assert (
        h.metric(
            world["base"], "llmplatform_requests_total", tenant="team-a/team-a", model="alpha", status="200"
        )
        > 0
    )
    assert h.metric(world["base"], "llmplatform_tokens_total", tenant="team-a/team-a", direction="out") > 0
    assert h.metric(world["base"], "llmplatform_cost_usd_total", tenant="team-a/team-a") > 0


def test_manifests_examples_serve_with_no_cluster(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    gw, base = h.start_gateway(tmp_path, ["--manifests", str(examples)])
    try:
        key = "llmp-team-b-FAKE-example-key"
        models = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0).models.list()
        assert sorted(m.id for m in models) == ["gpt-4o-mini", "llama-3-8b"]
    finally:
        gw.stop()
