"""The audit trail through the HTTP surface: exactly one record per completion request,
whatever its fate (served, 400, 401, 403, 404, 413, 415, 429, 503), with SHA-256 digests
that match the bytes the client sent and received, never the content; rotation under load
and two workers leave logs that `llmplatform audit verify` accepts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing.procs import cli, wait_for

KEY = "llmp-test-audit-key"
KEY_LIMITED = "llmp-test-audit-limited-key"
KEY_B = "llmp-test-audit-b-key"
SECRET_WORD = "zebra-umbrella-42"
"""Goes into every prompt; must never appear in an audit file."""
MESSAGES: list[Any] = [{"role": "user", "content": f"hello {SECRET_WORD}"}]


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("up")
    docs = [
        h.model("alpha", url),
        h.model("dead", "http://127.0.0.1:9", tier="premium"),  # nothing listens on port 9
        h.policy({"standard": ["alpha"], "premium": ["dead"]}),
        *h.tenant("team-a", {"alice": KEY}, ["standard", "premium"]),
        *h.tenant("team-l", {"lim": KEY_LIMITED}, ["standard"], limits={"requestsPerMinute": 1}),
        *h.tenant("team-b", {"bob": KEY_B}, ["premium"]),
    ]
    gateway_world.gateway(docs, "--max-body-bytes", "100000")
    return gateway_world


class Wire:
    """The exact bytes of each request the openai client sends, by x-request-id."""

    def __init__(self) -> None:
        self.sent: dict[str, bytes] = {}

    def hook(self, request: httpx.Request) -> None:
        if "x-request-id" in request.headers:
            self.sent[request.headers["x-request-id"]] = request.read()


def client(world: dict[str, Any], wire: Wire, key: str = KEY) -> openai.OpenAI:
    http = httpx.Client(event_hooks={"request": [wire.hook]})
    return openai.OpenAI(base_url=world["base"] + "/v1", api_key=key, max_retries=0, http_client=http)


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def audited(log: Path, rid: str) -> dict[str, Any]:
    """The one record of the request the client sent with x-request-id `rid` (the sink writes
    every 0.1 s; the gateway keeps its own request id and records the client's apart)."""
    wait_for(lambda: any(r.get("client_request_id") == rid for r in records(log)), 5, f"the record of {rid}")
    time.sleep(0.15)  # a second record would have been written by now
    found = [r for r in records(log) if r.get("client_request_id") == rid]
    assert len(found) == 1, found
    return found[0]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rid() -> str:
    return f"audit-{uuid.uuid4().hex[:12]}"


def test_served_json_and_stream_hash_what_was_sent_and_received(world: dict[str, Any]) -> None:
    wire = Wire()
    c = client(world, wire)
    r1 = rid()
    raw = c.chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES, max_tokens=5, extra_headers={"x-request-id": r1}
    )
    received = raw.http_response.content
    rec = audited(world["log"], r1)
    assert rec["request_sha256"] == sha(wire.sent[r1]) and rec["response_sha256"] == sha(received)
    assert rec["status"] == 200 and rec["error_code"] is None and rec["kind"] == "request"
    assert (rec["tenant"], rec["user"], rec["key_name"]) == ("team-a/team-a", "alice@team-a", "alice")
    assert (rec["model"], rec["tier"], rec["fallback_level"], rec["endpoint"]) == (
        "alpha",
        "standard",
        0,
        "chat",
    )
    usage = raw.parse().usage
    assert usage is not None
    assert (rec["tokens_in"], rec["tokens_out"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert rec["cost_usd"] > 0 and rec["latency_ms"] > 0 and rec["time"].endswith("Z")
    for field in ("classification", "findings", "redacted", "cache", "seq", "prev", "hash", "chain"):
        assert field in rec
    assert rec["classification"] == "public"

    r2 = rid()
    with c.chat.completions.with_streaming_response.create(
        model="auto",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": r2},
    ) as streamed:
        body = b"".join(streamed.iter_bytes())
    assert body.endswith(b"data: [DONE]\n\n")
    rec = audited(world["log"], r2)
    assert rec["request_sha256"] == sha(wire.sent[r2]) and rec["response_sha256"] == sha(body)
    assert rec["status"] == 200 and rec["tokens_out"] > 0
    assert SECRET_WORD not in world["log"].read_text()


def error_case(
    world: dict[str, Any], key: str, make: Callable[[openai.OpenAI, dict[str, str]], Any]
) -> tuple[dict[str, Any], openai.APIStatusError, bytes]:
    wire = Wire()
    r = rid()
    with pytest.raises(openai.APIStatusError) as exc:
        make(client(world, wire, key), {"x-request-id": r})
    rec = audited(world["log"], r)
    assert rec["response_sha256"] == sha(exc.value.response.content)
    assert rec["status"] == exc.value.status_code and rec["error_code"] == exc.value.code
    return rec, exc.value, wire.sent[r]


def test_each_rejection_is_one_record_with_its_status(world: dict[str, Any]) -> None:
    def chat(model: str = "auto", **kw: Any) -> Callable[[openai.OpenAI, dict[str, str]], Any]:
        return lambda c, hd: c.chat.completions.create(
            model=model, messages=kw.pop("messages", MESSAGES), extra_headers=hd, **kw
        )

    rec, exc, sent = error_case(world, "not-a-key", chat())
    assert exc.status_code == 401 and rec["tenant"] is None and rec["request_sha256"] is None
    assert rec["classification"] is None, "a request refused before the scan has no class"

    rec, exc, sent = error_case(world, KEY_B, chat("alpha"))
    assert exc.status_code == 403 and rec["tenant"] == "team-b/team-b" and rec["request_sha256"] == sha(sent)

    rec, exc, sent = error_case(world, KEY, chat("no-such-model"))
    assert exc.status_code == 404 and rec["model"] is None and rec["request_sha256"] == sha(sent)

    rec, exc, sent = error_case(world, KEY, chat(messages="not a list"))
    assert exc.status_code == 400 and rec["request_sha256"] == sha(sent)

    rec, exc, sent = error_case(world, KEY, chat(messages=[{"role": "user", "content": "x" * 200_000}]))
    assert exc.status_code == 413 and rec["request_sha256"] is None

    limited = client(world, Wire(), KEY_LIMITED)
    limited.chat.completions.create(model="auto", messages=MESSAGES)  # the one request this minute
    with pytest.raises(openai.RateLimitError):  # (twice, in case the minute turned meanwhile)
        limited.chat.completions.create(model="auto", messages=MESSAGES)
    rec, exc, sent = error_case(world, KEY_LIMITED, chat())
    assert exc.status_code == 429 and rec["error_code"] == "rate_limit_exceeded"

    rec, exc, sent = error_case(world, KEY_B, chat("premium"))  # the only model's upstream is down
    assert exc.status_code == 503 and rec["model"] == "dead" and rec["tier"] == "premium"
    assert rec["request_sha256"] == sha(sent) and rec["tokens_out"] == 0

    raw = b"model=auto&messages=hi"
    r = rid()
    resp = httpx.post(
        world["base"] + "/v1/completions",
        content=raw,
        headers={
            "Authorization": f"Bearer {KEY}",
            "x-request-id": r,
            "content-type": "application/x-www-form-urlencoded",
        },
    )
    rec = audited(world["log"], r)
    assert resp.status_code == 415 and rec["status"] == 415 and rec["response_sha256"] == sha(resp.content)
    assert rec["endpoint"] == "completions"


def test_the_running_log_verifies(world: dict[str, Any]) -> None:
    client(world, Wire()).chat.completions.create(model="auto", messages=MESSAGES)
    time.sleep(0.2)
    done = verify_cli(world["log"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no close record (still running" in done.stdout


def verify_cli(*files: Path, partial: bool = False) -> subprocess.CompletedProcess[str]:
    args = cli("audit", "verify", *map(str, files), *(["--partial"] if partial else []))
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


async def burst(base: str, n: int, concurrency: int = 16, stream_every: int = 3) -> list[int]:
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as c:
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> int:
            body = {"model": "auto", "messages": MESSAGES, "max_tokens": 3, "stream": i % stream_every == 0}
            async with sem:
                r = await c.post(base + "/v1/chat/completions", json=body, headers={"x-request-id": f"b{i}"})
                return r.status_code

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def audit_files(tmp: Path, stem: str) -> list[Path]:
    return sorted(p for p in tmp.iterdir() if p.name.startswith(stem))


def test_rotation_under_load_keeps_the_chain(world: dict[str, Any], tmp_path: Path) -> None:
    log = tmp_path / "rot.jsonl"
    gw, base = h.start_gateway(
        tmp_path,
        ["--manifests", str(world["manifests"])],
        "--audit-log",
        str(log),
        "--audit-log-max-bytes",
        "40000",
        "--audit-log-keep",
        "1000",
        "--audit-fsync-seconds",
        "0",
    )
    try:
        codes = asyncio.run(burst(base, 400))
    finally:
        gw.stop()
    assert codes == [200] * 400
    files = audit_files(tmp_path, "rot.jsonl")
    assert len(files) >= 5 and all(f.stat().st_size <= 40000 for f in files)
    done = verify_cli(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "400 requests" in done.stdout and "closed cleanly" in done.stdout
    ids = [r["client_request_id"] for f in files for r in records(f) if r["kind"] == "request"]
    assert sorted(ids) == sorted(f"b{i}" for i in range(400))

    # and an edit in a rotated file is named by file and line
    victim = files[2]
    text = victim.read_text().splitlines(keepends=True)
    text[3] = text[3].replace('"status":200', '"status":500')
    victim.write_text("".join(text))
    done = verify_cli(*files)
    assert done.returncode == 1 and done.stdout.startswith(f"FAILED: {victim}:4:"), done.stdout


def test_two_workers_each_keep_a_chain_that_survives_a_killed_worker(
    world: dict[str, Any], tmp_path: Path
) -> None:
    log = tmp_path / "w.jsonl"
    gw, base = h.start_gateway(
        tmp_path, ["--manifests", str(world["manifests"])], "--audit-log", str(log), "--workers", "2"
    )
    try:
        wait_for(lambda: len(h.workers(gw)) == 2 and h.listening(gw) == 2, 15, "two workers listening")
        first = asyncio.run(burst(base, 100))
        time.sleep(0.3)  # both workers' buffers written before one of them dies
        victim = min(h.workers(gw))
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: h.listening(gw) == 3, 15, "a new worker listening")
        second = asyncio.run(burst(base, 100))
    finally:
        gw.stop()
    assert first == second == [200] * 100
    files = audit_files(tmp_path, "w.jsonl")
    assert [f.name for f in files] == ["w.jsonl.w0", "w.jsonl.w1"]
    chains = {f.name: {r["chain"] for r in records(f)} for f in files}
    assert all(len(c) == 1 for c in chains.values()) and chains["w.jsonl.w0"] != chains["w.jsonl.w1"]
    done = verify_cli(*files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("closed cleanly") == 2 and "1 restart(s) after a crash" in done.stdout
    ids = [r["client_request_id"] for f in files for r in records(f) if r["kind"] == "request"]
    assert sorted(ids) == sorted([f"b{i}" for i in range(100)] * 2)
