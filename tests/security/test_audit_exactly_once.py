"""Exactly one audit record per request, whatever fails inside the gateway (#12 item 3).

A gateway runs in this process (its own event loop in a thread, the real app on a loopback
port, a real mock upstream), so each step of the completion path can be made to raise:
authentication, body parsing, token estimate, worst case, routing, governance, reservation,
cache lookup and store, the upstream call, the relay (before and after the stream started),
settlement, response hashing, metrics and building the audit record. For each, the client
gets a sane answer (the answer itself when the failure is in bookkeeping after it, an
OpenAI-style 5xx, or an in-band error event and `[DONE]` when the stream had started) and the
audit trail gets exactly one record for the request.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from llmplatform.gateway import accounting, messagesapi, relay, responsecache, server, upstream, worstcase
from llmplatform.gateway import governance as gv
from llmplatform.gateway.server import Gateway, Settings
from llmplatform.render.source import ManifestDir
from llmplatform_testing import attacks as bh
from llmplatform_testing import gateway as h

KEY = "llmp-sec-audit-once"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


class InProcess:
    """A Gateway served from a thread of this process, so tests can patch its modules."""

    def __init__(self, manifests: Path, audit: Path) -> None:
        self.gateway = Gateway(ManifestDir(str(manifests)), Settings(audit_log=str(audit)))
        self.port = h.free_port()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.gateway.app(), access_log=None)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=60)

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("audit-once")
    mock, url = h.start_mock(tmp, "up")
    gw: InProcess | None = None
    try:
        docs = [
            h.model("alpha", url),
            h.policy({"standard": ["alpha"]}, cache={"enabled": True, "ttlSeconds": 60}),
            *h.tenant("once", {"k": KEY}, ["standard"], limits={"requestsPerMinute": 100000}),
        ]
        gw = InProcess(h.write_manifests(tmp / "m", docs), tmp / "audit.jsonl")
        yield {"base": f"http://127.0.0.1:{gw.port}", "gw": gw.gateway, "audit": tmp / "audit.jsonl"}
    finally:
        if gw is not None:
            gw.stop()
        mock.stop()


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


def both(mp: pytest.MonkeyPatch, chat: tuple[Any, str], dialect: str) -> None:
    """Break a step of the chat path and the same step of the Messages dialect (which a
    Messages request takes instead)."""
    mp.setattr(*chat, boom)
    mp.setattr(messagesapi.MessagesDialect, dialect, boom)


async def aboom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


Patch = Callable[[pytest.MonkeyPatch, Gateway], None]

STEPS: dict[str, tuple[Patch, int, int]] = {
    # step: (how it fails, status without stream, status with stream)
    "auth": (lambda mp, gw: mp.setattr(gw, "authenticate", boom), 500, 500),
    "body parse": (lambda mp, gw: mp.setattr(server, "parse_body", boom), 500, 500),
    "token estimate": (lambda mp, gw: both(mp, (server, "prompt_tokens"), "prompt_tokens"), 500, 500),
    "worst case": (lambda mp, gw: both(mp, (worstcase, "shape"), "shape"), 500, 500),
    "routing": (lambda mp, gw: mp.setattr(server, "candidates", boom), 500, 500),
    "governance": (lambda mp, gw: mp.setattr(gv, "scan", boom), 500, 500),
    "reservation": (lambda mp, gw: mp.setattr(gw.admission.local, "reserve", aboom), 500, 500),
    # the response cache is an optimisation: its failure is a miss, never a failed request
    "cache lookup": (lambda mp, gw: mp.setattr(responsecache, "lookup", aboom), 200, 200),
    "cache store": (lambda mp, gw: mp.setattr(responsecache, "store", aboom), 200, 200),
    "upstream call": (lambda mp, gw: mp.setattr(gw.upstream, "_call", aboom), 500, 500),
    # a stream's usage is taken in the relay (covered by the mid-stream test below)
    "usage": (lambda mp, gw: mp.setattr(upstream, "take_usage", boom), 500, 200),
    "relay start": (lambda mp, gw: mp.setattr(upstream, "relay", aboom), 200, 500),
    "settlement": (lambda mp, gw: mp.setattr(gw.admission.local, "settle", aboom), 200, 200),
    "response hash": (lambda mp, gw: mp.setattr(server, "response_sha256", boom), 200, 200),
    "metrics": (lambda mp, gw: mp.setattr(gw.recorder, "_metrics", boom), 200, 200),
    "audit record": (lambda mp, gw: mp.setattr(accounting, "request_record", boom), 200, 200),
}


def request_records(path: Path) -> list[dict[str, Any]]:
    return [r for r in bh.audit_records(path) if r.get("kind") == "request"]


def settle_count(path: Path, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(request_records(path)) < expected:
        time.sleep(0.05)
    time.sleep(0.3)  # a duplicate would have been flushed by now (the sink flushes every 0.1 s)
    return request_records(path)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_failure_in_any_step_leaves_one_record_and_a_sane_answer(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, step: str, stream: bool
) -> None:
    patch, plain_status, stream_status = STEPS[step]
    before = len(request_records(world["audit"]))
    h.mock_config(h_mock(world), latency_ms=0)
    patch(monkeypatch, world["gw"])
    body = {"model": "auto", "messages": MESSAGES, "max_tokens": 8, "stream": stream}
    with httpx.Client(timeout=60) as c:
        r = c.post(
            world["base"] + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        )
    monkeypatch.undo()
    assert r.status_code == (stream_status if stream else plain_status), (r.status_code, r.text[:300])
    if r.status_code >= 500:
        error = r.json()["error"]
        assert error["type"] and error["message"] and "injected" not in error["message"]
    elif stream:
        assert r.text.rstrip().endswith("data: [DONE]")
    else:
        assert r.json()["choices"][0]["message"]["content"]
    records = settle_count(world["audit"], before + 1)
    assert len(records) == before + 1, records[before:]
    record = records[-1]
    assert record["request_id"] == r.headers.get("x-request-id", record["request_id"])
    assert record["status"] == r.status_code


def test_a_failure_mid_stream_ends_it_in_band(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """After the status line is sent, a failure is an error event and `[DONE]`, never a second
    HTTP answer; the record says 500."""
    h.mock_config(h_mock(world), latency_ms=0)
    before = len(request_records(world["audit"]))
    real = relay._filter
    calls = {"n": 0}

    def third_fails(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(relay, "_filter", third_fails)
    body = {"model": "auto", "messages": MESSAGES, "max_tokens": 8, "stream": True}
    with httpx.Client(timeout=60) as c:
        r = c.post(
            world["base"] + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        )
    monkeypatch.undo()
    assert r.status_code == 200 and r.text.count("HTTP/1.1") == 0
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "internal_error"
    records = settle_count(world["audit"], before + 1)
    assert len(records) == before + 1
    assert records[-1]["status"] == 500 and records[-1]["error_code"] == "internal_error"


def h_mock(world: dict[str, Any]) -> str:
    """The mock upstream's base URL, from the model the gateway serves."""
    compiled = world["gw"].compiled
    assert compiled is not None
    return str(compiled.models["alpha"].urls["chat"]).removesuffix("/v1/chat/completions")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("step", list(STEPS))
def test_the_messages_api_leaves_one_record_and_an_anthropic_answer(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, step: str, stream: bool
) -> None:
    """The same failures through `/v1/messages`: one record, and answers in Anthropic's shape
    (an `error` body or, once the stream started, an `error` event)."""
    patch, plain_status, stream_status = STEPS[step]
    before = len(request_records(world["audit"]))
    h.mock_config(h_mock(world), latency_ms=0)
    patch(monkeypatch, world["gw"])
    body = {"model": "auto", "messages": MESSAGES, "max_tokens": 8, "stream": stream}
    with httpx.Client(timeout=60) as c:
        r = c.post(world["base"] + "/v1/messages", json=body, headers={"x-api-key": KEY})
    monkeypatch.undo()
    assert r.status_code == (stream_status if stream else plain_status), (r.status_code, r.text[:300])
    if r.status_code >= 500:
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "api_error"
        assert "injected" not in r.json()["error"]["message"]
    elif stream:
        kinds = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
        assert kinds[0] == "message_start" and kinds[-1] in ("message_stop", "error"), kinds
    else:
        assert r.json()["type"] == "message" and r.json()["content"][0]["text"]
    records = settle_count(world["audit"], before + 1)
    assert len(records) == before + 1, records[before:]
    assert records[-1]["status"] == r.status_code
