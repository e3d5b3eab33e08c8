"""Hot reload under load, and fuzzed request bodies: no dropped request, no 500.

The config file is replaced atomically (write, then rename), as the kubelet does for a mounted
ConfigMap; bad versions (garbage, an unknown schemaVersion, a contentHash that does not match)
must be rejected with a log line and a metric while the previous config keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmplatform.render import load_manifests, render
from llmplatform_testing import gateway as h
from llmplatform_testing.procs import wait_for

KEY = "llmp-test-reload-key"
NEW_KEY = "llmp-test-reload-new-key"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def rendered(directory: Path, upstream: str, extra_tenant: bool) -> str:
    docs = [
        h.model("alpha", upstream),
        h.policy({"standard": ["alpha"]}),
        *h.tenant("team-r", {"k": KEY}, ["standard"]),
    ]
    if extra_tenant:
        docs += h.tenant("team-new", {"k": NEW_KEY}, ["standard"])
    h.write_manifests(directory, docs)
    manifests = load_manifests(directory)
    return render(manifests.resources, manifests.secrets).config_json


def replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    tmp = gateway_world.tmp
    url = gateway_world.mock("upstream")
    secret = tmp / "secrets" / h.PLATFORM / "upstream" / "api-key"
    secret.parent.mkdir(parents=True)
    secret.write_text(h.UPSTREAM_KEY + "\n")
    config = tmp / "config.json"
    replace(config, rendered(tmp / "m1", url, extra_tenant=False))
    gateway_world.serve(["--config", str(config)], "--secrets-dir", str(tmp / "secrets"))
    gateway_world["config"] = config
    return gateway_world


async def load(base: str, stop: threading.Event) -> list[int]:
    codes: list[int] = []
    async with httpx.AsyncClient(timeout=10) as c:

        async def worker() -> None:
            while not stop.is_set():
                r = await c.post(
                    base + "/v1/chat/completions",
                    json={"model": "auto", "messages": MESSAGES, "max_tokens": 2},
                    headers={"Authorization": f"Bearer {KEY}"},
                )
                codes.append(r.status_code)

        await asyncio.gather(*(worker() for _ in range(8)))
    return codes


def test_reload_under_load_drops_nothing_and_rejects_bad_configs(world: dict[str, Any]) -> None:
    base, config, tmp = world["base"], world["config"], world["tmp"]
    good = config.read_text()
    with_new_tenant = rendered(tmp / "m2", world["upstream"], extra_tenant=True)
    wrong_version = json.dumps({**json.loads(good), "schemaVersion": 99})
    torn = good[: len(good) // 2]
    edited = good.replace('"requestsPerMinute"', '"requestsPerMinute" ', 1).replace('"team-r"', '"team-x"', 1)
    assert edited != good
    stop = threading.Event()
    result: list[list[int]] = []
    runner = threading.Thread(target=lambda: result.append(asyncio.run(load(base, stop))))
    runner.start()
    try:
        time.sleep(0.3)
        new = httpx.post(
            base + "/v1/chat/completions",
            json={"model": "auto", "messages": MESSAGES},
            headers={"Authorization": f"Bearer {NEW_KEY}"},
        )
        assert new.status_code == 401
        loaded = h.metric(base, "llmplatform_config_reloads_total", result="loaded")
        replace(config, with_new_tenant)
        wait_for(lambda: h.metric(base, "llmplatform_config_reloads_total", result="loaded") == loaded + 1)
        for bad in ("{not json", wrong_version, torn, edited):
            rejected = h.metric(base, "llmplatform_config_reloads_total", result="rejected")
            replace(config, bad)
            wait_for(
                lambda r=rejected: (
                    h.metric(base, "llmplatform_config_reloads_total", result="rejected") == r + 1
                )
            )
        replace(config, good)
        wait_for(lambda: h.metric(base, "llmplatform_config_reloads_total", result="loaded") == loaded + 2)
        time.sleep(0.3)
    finally:
        stop.set()
        runner.join()
    codes = result[0]
    assert len(codes) > 100
    assert set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    log = world["gw"].log.read_text()
    assert log.count("config rejected") >= 4
    assert "schemaVersion 99" in log


def test_key_added_by_reload_works(world: dict[str, Any]) -> None:
    config, tmp = world["config"], world["tmp"]
    loaded = h.metric(world["base"], "llmplatform_config_reloads_total", result="loaded")
    replace(config, rendered(tmp / "m3", world["upstream"], extra_tenant=True))
    wait_for(
        lambda: h.metric(world["base"], "llmplatform_config_reloads_total", result="loaded") == loaded + 1
    )
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        json={"model": "auto", "messages": MESSAGES},
        headers={"Authorization": f"Bearer {NEW_KEY}"},
    )
    assert r.status_code == 200


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant", "tool"]) | JSON,
        "content": st.text(max_size=50) | JSON,
    }
)
BODY = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["auto", "alpha", "standard", "premium", "nope", ""]) | JSON,
        "messages": st.lists(MESSAGE, max_size=3) | JSON,
        "prompt": st.text(max_size=30) | JSON,
        "input": st.text(max_size=30) | JSON,
        "stream": st.booleans() | JSON,
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}) | JSON,
        "max_tokens": st.integers(-5, 10_000) | JSON,
        "max_completion_tokens": st.integers(-5, 10_000) | JSON,
        "user": st.text(max_size=10) | JSON,
        "temperature": JSON,
        "tools": JSON,
    },
)
ALLOWED = {200, 400, 403, 404, 413, 429}
FUZZED: list[str] = []
"""Request ids of the fuzzed requests, each of which must have exactly one audit record."""


def check(response: httpx.Response) -> None:
    FUZZED.append(response.headers["x-request-id"])
    assert response.status_code in ALLOWED, (response.status_code, response.text[:300])
    if response.status_code != 200:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["type"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODY, path=st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]))
def test_fuzzed_json_bodies_never_500(world: dict[str, Any], body: dict[str, Any], path: str) -> None:
    r = httpx.post(world["base"] + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    check(r)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_raw_bodies_never_500(world: dict[str, Any], raw: bytes) -> None:
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    check(r)
    assert r.status_code == 400 or r.status_code == 200


def test_every_fuzzed_request_has_exactly_one_audit_record(world: dict[str, Any]) -> None:
    if not FUZZED:
        pytest.skip("checks the requests of the fuzz tests above; run it with them")
    time.sleep(0.3)  # the audit sink writes every 0.1 s
    lines = (world["tmp"] / "gw-audit.jsonl").read_text().splitlines()
    counts = Counter(json.loads(line).get("request_id") for line in lines)
    assert [rid for rid in FUZZED if counts[rid] != 1] == []


def test_deeply_nested_json_is_400(world: dict[str, Any]) -> None:
    raw = b'{"model": "auto", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = httpx.post(
        world["base"] + "/v1/chat/completions", content=raw, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert r.status_code in (400, 413)


def test_start_without_a_valid_config_is_not_ready_until_one_arrives(
    world: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"schemaVersion": 2}))
    gw, base = h.start_gateway(
        tmp_path, ["--config", str(config)], "--secrets-dir", str(world["tmp"] / "secrets"), ready="/healthz"
    )
    try:
        assert httpx.get(base + "/readyz").status_code == 503
        r = httpx.post(base + "/v1/chat/completions", json={}, headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        replace(config, world["config"].read_text())
        wait_for(lambda: httpx.get(base + "/readyz").status_code == 200)
        r = httpx.post(
            base + "/v1/chat/completions",
            json={"model": "auto", "messages": MESSAGES},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert r.status_code == 200
    finally:
        gw.stop()


def kubelet_update(folder: Path, files: dict[str, bytes], version: int) -> None:
    """What the kubelet does for a mounted ConfigMap: write a new timestamped folder, point a
    temporary `..data` link at it and rename the link over the old one; the visible names are
    links through `..data`."""
    target = folder / f"..v{version}"
    target.mkdir()
    for name, data in files.items():
        (target / name).write_bytes(data)
    tmp_link = folder / "..data_tmp"
    tmp_link.symlink_to(target.name)
    tmp_link.replace(folder / "..data")
    for name in files:
        link = folder / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")
    for stale in ("config.json", "config.json.gz"):
        if stale not in files and (folder / stale).is_symlink():
            (folder / stale).unlink()


def test_mounted_configmap_folder_updates_including_gzip(world: dict[str, Any], tmp_path: Path) -> None:
    from llmplatform.contract.config import compress_config

    folder = tmp_path / "mount"
    folder.mkdir()
    first = rendered(tmp_path / "m1", world["upstream"], extra_tenant=False)
    kubelet_update(folder, {"config.json": first.encode()}, 1)
    gw, base = h.start_gateway(
        tmp_path, ["--config", str(folder)], "--secrets-dir", str(world["tmp"] / "secrets")
    )
    try:
        headers = {"Authorization": f"Bearer {NEW_KEY}"}
        body = {"model": "auto", "messages": MESSAGES}
        assert httpx.post(base + "/v1/chat/completions", json=body, headers=headers).status_code == 401
        # the operator switched to binaryData config.json.gz (a large config) and added a tenant
        text = rendered(tmp_path / "m2", world["upstream"], extra_tenant=True)
        kubelet_update(folder, {"config.json.gz": compress_config(text)}, 2)
        wait_for(
            lambda: httpx.post(base + "/v1/chat/completions", json=body, headers=headers).status_code == 200
        )
    finally:
        gw.stop()


def test_manifest_folder_changes_are_rendered_and_served(world: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    rendered(folder, world["upstream"], extra_tenant=False)
    gw, base = h.start_gateway(tmp_path, ["--manifests", str(folder)])
    try:
        headers = {"Authorization": f"Bearer {NEW_KEY}"}
        body = {"model": "auto", "messages": MESSAGES}
        assert httpx.post(base + "/v1/chat/completions", json=body, headers=headers).status_code == 401
        rendered(folder, world["upstream"], extra_tenant=True)  # rewrites all.yaml atomically
        wait_for(
            lambda: httpx.post(base + "/v1/chat/completions", json=body, headers=headers).status_code == 200
        )
    finally:
        gw.stop()


def test_a_dead_worker_is_replaced(world: dict[str, Any], tmp_path: Path) -> None:
    gw, base = h.start_gateway(
        tmp_path,
        ["--config", str(world["config"])],
        "--secrets-dir",
        str(world["tmp"] / "secrets"),
        "--workers",
        "2",
    )
    try:
        wait_for(lambda: len(h.workers(gw)) == 2 and h.listening(gw) == 2, 10, "two workers listening")
        before = h.workers(gw)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(h.workers(gw) - before) == 1, 10, "a new worker")
        assert victim not in h.workers(gw)
        wait_for(lambda: h.listening(gw) == 3, 10, "the new worker listening")
        headers = {"Authorization": f"Bearer {KEY}"}
        for _ in range(10):  # whichever worker the kernel picks answers
            r = httpx.post(
                base + "/v1/chat/completions", json={"model": "auto", "messages": MESSAGES}, headers=headers
            )
            assert r.status_code == 200
    finally:
        gw.stop()
