"""`make run` answers chat, streaming and embeddings out of the box.

Runs the Makefile's own `run` target (so the test follows what README tells a newcomer to
type) on a free port, then talks to it with the official openai client as Team B with the
key from examples/. The models point at api.openai.com and a cluster Service in examples/;
`--mock` sends them to `llmplatform mock-upstream` (a test server). Also checked: it listens
on 127.0.0.1, audit records go to their file and not to the log, and stopping the process
group leaves no mock upstream behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import ROOT
from llmplatform_testing.procs import free_port

TEAM_B_KEY = "llmp-team-b-FAKE-example-key"


def children(pid: int) -> list[int]:
    """Every descendant of pid (from /proc), so the test can check none outlives the stop."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out += [int(entry.name), *children(int(entry.name))]
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("makerun")
    port = free_port()
    audit = tmp / "audit.jsonl"
    log = (tmp / "make-run.log").open("wb")
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}", f"RUN_AUDIT={audit}"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "make-run.log").read_text()
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp / "make-run.log").read_text()
            time.sleep(0.2)
        yield {"base": base, "audit": audit, "log": tmp / "make-run.log", "proc": proc}
    finally:
        descendants = children(proc.pid)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{pid}").exists() for pid in descendants) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in descendants if Path(f"/proc/{pid}").exists()]
        assert not left, f"processes left behind by make run: {left}"


def client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=TEAM_B_KEY, max_retries=0)


def test_chat_stream_and_embeddings_answer(run: dict[str, Any]) -> None:
    c = client(run["base"])
    chat = c.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Say hello."}], max_tokens=8
    )
    assert chat.headers["x-llmplatform-model"] == "gpt-4o-mini"
    assert chat.parse().choices[0].message.content
    stream = c.chat.completions.create(
        model="efficient", messages=[{"role": "user", "content": "Count."}], max_tokens=8, stream=True
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert text
    emb = c.embeddings.create(model="standard", input=["a", "b"])
    assert len(emb.data) == 2 and emb.data[0].embedding


def test_responses_api_answers(run: dict[str, Any]) -> None:
    """The README's Responses lines: gpt-4o-mini passes through to the mock's Responses API,
    the self-hosted llama-3-8b (efficient) is translated to its chat completions."""
    c = client(run["base"])
    made = c.responses.with_raw_response.create(model="auto", input="Say hello.", max_output_tokens=16)
    assert made.headers["x-llmplatform-model"] == "gpt-4o-mini" and made.parse().output_text
    with c.responses.stream(model="efficient", input="Count.", max_output_tokens=8) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
    assert "".join(deltas)


def test_loopback_only_and_audit_in_its_file(run: dict[str, Any]) -> None:
    client(run["base"]).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the audit file is written after the answer
        records = [json.loads(line) for line in run["audit"].read_text().splitlines() if line]
        if any(r.get("endpoint") == "chat" for r in records):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no chat audit record in the audit file")
    log_lines = [line for line in run["log"].read_text().splitlines() if line.startswith("{")]
    logged = [json.loads(line) for line in log_lines]
    assert not [r for r in logged if "seq" in r or "request_sha256" in r], "audit records in the log"
    listening = [r for r in logged if r.get("message") == "gateway listening"]
    assert listening and listening[0]["host"] == "127.0.0.1"
