"""Retention through the gateway: each request's audit record carries its tenant's retention
(the longest of its frameworks' periods, from the policy), and a cached answer lives in Redis
no longer than that retention. The time-based part (rotation, pruning, `audit verify` across
pruned files) runs on a controlled clock in tests/gateway/unit/test_audit_retention.py."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import redis

from llmplatform.gateway.cache import PREFIX
from llmplatform_testing import gateway as h
from llmplatform_testing.procs import wait_for

KEYS = {"plain": "llmp-ret-plain-key", "gdpr": "llmp-ret-gdpr-key", "sox": "llmp-ret-sox-key"}
WEEK = 604800


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    url = gateway_world.mock("mock")
    redis_url = gateway_world.redis()
    docs = [
        h.model("alpha", url, region="EU"),  # gdpr tenants need an EU model
        h.policy(
            {"standard": ["alpha"]},
            cache={"enabled": True, "ttlSeconds": WEEK},
            retention={"defaultDays": 1, "frameworks": [{"framework": "gdpr", "days": 3}]},
        ),
        *h.tenant("ret-plain", {"k": KEYS["plain"]}, ["standard"]),
        *h.tenant("ret-gdpr", {"k": KEYS["gdpr"]}, ["standard"], compliance={"frameworks": ["gdpr"]}),
        *h.tenant("ret-sox", {"k": KEYS["sox"]}, ["standard"], compliance={"frameworks": ["sox", "gdpr"]}),
    ]
    gateway_world.gateway(docs, "--redis-url", redis_url)
    return gateway_world


def ask(world: dict[str, Any], key: str) -> None:
    c = openai.OpenAI(base_url=world["base"] + "/v1", api_key=key, max_retries=0)
    c.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "retention?"}], temperature=0, max_tokens=3
    )


def test_audit_records_carry_the_tenants_retention(world: dict[str, Any]) -> None:
    for key in KEYS.values():
        ask(world, key)
    wait_for(lambda: len(_requests(world)) >= 3, 30, "three audit records")
    days = {r["tenant"]: r["retention_days"] for r in _requests(world)}
    assert days == {"ret-plain/ret-plain": 1, "ret-gdpr/ret-gdpr": 3, "ret-sox/ret-sox": 2557}


def test_cached_answers_never_outlive_the_retention(world: dict[str, Any]) -> None:
    for key in KEYS.values():
        ask(world, key)
    r = redis.Redis.from_url(world["redis"])
    ttl = {}
    for raw in r.scan_iter(match=PREFIX + "*"):
        name = raw.decode()
        tenant = name[len(PREFIX) :].rsplit(":", 1)[0]
        ttl[tenant] = int(r.ttl(name))
    assert set(ttl) == {"ret-plain/ret-plain", "ret-gdpr/ret-gdpr", "ret-sox/ret-sox"}
    assert 86400 - 60 < ttl["ret-plain/ret-plain"] <= 86400  # one day, not the policy's week
    assert 3 * 86400 - 60 < ttl["ret-gdpr/ret-gdpr"] <= 3 * 86400
    assert WEEK - 60 < ttl["ret-sox/ret-sox"] <= WEEK  # seven years: the TTL itself is shorter


def _requests(world: dict[str, Any]) -> list[dict[str, Any]]:
    lines = world["log"].read_text().splitlines() if world["log"].exists() else []
    return [r for r in map(json.loads, lines) if r.get("kind") == "request"]
