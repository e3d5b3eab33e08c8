"""A gateway serving a sharded config (#18) from a folder laid out as the kubelet writes a
projected ConfigMap volume, with the official openai client.

The config of a few dozen tenants is split with a budget of 1 KiB, so it has several tenant
shards. What is checked: a tenant from the last shard is served; an index that names a shard
file not delivered yet, or delivered with other content, is never applied (the previous
generation keeps serving, `llmplatform_config_rejected_total{reason="incomplete_generation"}`
counts it); once the file arrives the new generation serves; an index of an unknown shard
format is kept out (`unsupported_version`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform.contract import shards as gs
from llmplatform.render import RenderResult, load_manifests, render
from llmplatform_testing import gateway as h
from llmplatform_testing.configvolume import files_of, write_volume
from llmplatform_testing.procs import wait_for

TENANTS = 24
BUDGET = 1024


def key(i: int) -> str:
    return f"llmp-shard-gw-{i:03d}-key"


def rendered(world: h.World, tenants: int, name: str) -> RenderResult:
    docs: list[dict[str, Any]] = [h.model("alpha", world["upstream"]), h.policy({"standard": ["alpha"]})]
    for i in range(tenants):
        docs += h.tenant(f"team-{i:03d}", {"k": key(i)}, ["standard"])
    manifests = load_manifests(world.manifests(docs, name))
    result = render(manifests.resources, manifests.secrets, shard_bytes=BUDGET)
    assert result.sharded is not None and len(result.sharded.shards) >= 4, "the test needs several shards"
    return result


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    tmp = gateway_world.tmp
    gateway_world.mock("upstream")
    secret = tmp / "secrets" / h.PLATFORM / "upstream" / "api-key"
    secret.parent.mkdir(parents=True)
    secret.write_text(h.UPSTREAM_KEY + "\n")
    first = rendered(gateway_world, TENANTS, "gen1")
    volume = tmp / "config"
    write_volume(volume, files_of(first.config_maps))
    gateway_world.serve(["--config", str(volume)], "--secrets-dir", str(tmp / "secrets"))
    gateway_world.update(volume=volume, first=first)
    return gateway_world


def status(world: h.World, api_key: str) -> int:
    client = openai.OpenAI(base_url=world["base"] + "/v1", api_key=api_key, max_retries=0)
    try:
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def shard_of_tenant(result: RenderResult, index: int) -> str:
    tenant = next(t for t in result.gateway_config.tenants if t.name == f"team-{index:03d}")
    count = len(result.sharded.shards) - 1 if result.sharded else 1
    return gs.shard_name(gs.tenant_shard(tenant.id, count))


def rejected(world: h.World, reason: str) -> float:
    return h.metric(world["base"], "llmplatform_config_rejected_total", reason=reason)


def test_a_tenant_from_the_last_shard_is_served(world: h.World) -> None:
    first: RenderResult = world["first"]
    assert first.sharded is not None
    last = first.sharded.shards[-1].ref.name
    index = next(i for i in range(TENANTS) if shard_of_tenant(first, i) == last)
    assert status(world, key(index)) == 200
    assert status(world, "llmp-no-such-key") == 401
    ready = httpx.get(world["base"] + "/readyz").json()
    assert ready.get("config_rejected") is None, ready


def test_a_half_written_generation_is_never_served(world: h.World) -> None:
    first: RenderResult = world["first"]
    second = rendered(world, TENANTS + 1, "gen2")  # one tenant more: its shard changes
    assert second.sharded is not None and first.sharded is not None
    new = TENANTS
    changed = shard_of_tenant(second, new)
    new_shard = next(s for s in second.sharded.shards if s.ref.name == changed)
    old_files = files_of(first.config_maps)
    assert new_shard.ref.file not in old_files
    incomplete = rejected(world, "incomplete_generation")

    # the kubelet delivered the new index first: its shard file is not there
    write_volume(world["volume"], {**old_files, "index.json": second.sharded.index_text().encode()})
    wait_for(lambda: rejected(world, "incomplete_generation") > incomplete, 30, "the incomplete generation")
    assert status(world, key(new)) == 401
    assert status(world, key(0)) == 200, "the previous generation keeps serving"
    assert httpx.get(world["base"] + "/readyz").json()["config_rejected"]["reason"] == "incomplete_generation"

    # the file arrives under its name but with other content (a limit raised by hand): refused too
    incomplete = rejected(world, "incomplete_generation")
    doc = json.loads(gzip.decompress(new_shard.packed))
    doc["tenants"][0]["limits"]["requestsPerMinute"] = 1_000_000
    forged = {**old_files, "index.json": second.sharded.index_text().encode()}
    forged[new_shard.ref.file] = gzip.compress(json.dumps(doc).encode())
    write_volume(world["volume"], forged)
    wait_for(lambda: rejected(world, "incomplete_generation") > incomplete, 30, "the forged shard refused")
    assert status(world, key(new)) == 401

    # every shard there, as listed (old files beside them, as the operator keeps them): served
    write_volume(world["volume"], {**old_files, **files_of(second.config_maps)})
    wait_for(lambda: status(world, key(new)) == 200, 30, "the new tenant served")
    assert status(world, key(0)) == 200
    world["first"] = second


def test_an_unknown_shard_format_keeps_the_old_config(world: h.World, tmp_path: Path) -> None:
    serving: RenderResult = world["first"]
    assert serving.sharded is not None
    raw = json.loads(serving.sharded.index_text())
    raw["shardFormat"] = gs.SHARD_FORMAT + 1
    raw["shards"] = raw["shards"][:1]  # a future layout: would drop every tenant if applied
    before = rejected(world, "unsupported_version")
    write_volume(world["volume"], {**files_of(serving.config_maps), "index.json": json.dumps(raw).encode()})
    wait_for(lambda: rejected(world, "unsupported_version") > before, 30, "the unknown format refused")
    assert status(world, key(0)) == 200
