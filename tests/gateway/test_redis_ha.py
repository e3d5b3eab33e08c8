"""Limits on highly available Redis: a 3-primary Redis Cluster keeps them exact, and a Sentinel
failover (the primary SIGKILLed under load) recovers on the promoted replica.

Real `redis-server` processes on loopback (llmplatform_testing.redisha). The limits are per
hour, so a test never straddles a minute window; it waits out the last minute of an hour.
The failover test measures how many requests were admitted over the limit while the primary
was gone and prints it (docs/operations.md reports the numbers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing import redisha
from llmplatform_testing.procs import wait_for

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
HOURLY = 20
"""requestsPerHour of every tenant here."""
TENANTS = ("t1", "t2", "t3", "t4", "t5", "t6")
"""Six tenants, so their hash tags land on more than one of the three primaries."""


def key(tenant: str) -> str:
    return f"llmp-test-ha-{tenant}"


def avoid_hour_edge(margin: float = 60.0) -> None:
    left = 3600 - time.time() % 3600
    if left < margin:
        time.sleep(left + 0.05)


def docs(upstream: str) -> list[dict[str, Any]]:
    out = [h.model("alpha", upstream), h.policy({"standard": ["alpha"]})]
    for tenant in TENANTS:
        out += h.tenant(tenant, {"k": key(tenant)}, ["standard"], limits={"requestsPerHour": HOURLY})
    return out


async def post(c: httpx.AsyncClient, base: str, tenant: str) -> int:
    try:
        r = await c.post(
            base + "/v1/chat/completions",
            json={"model": "auto", "messages": MESSAGES, "max_tokens": 2},
            headers={"Authorization": f"Bearer {key(tenant)}"},
        )
    except httpx.HTTPError:
        return 0
    return r.status_code


async def burst(bases: list[str], tenant: str, n: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=n)) as c:
        return list(await asyncio.gather(*(post(c, bases[i % len(bases)], tenant) for i in range(n))))


@pytest.fixture(scope="module")
def upstream(gateway_world: h.World) -> str:
    return gateway_world.mock("upstream")


def test_cluster_of_three_primaries_keeps_limits_exact(gateway_world: h.World, upstream: str) -> None:
    w = gateway_world
    procs, url = redisha.start_cluster(w.tmp / "cluster")
    w.procs += procs
    path = w.manifests(docs(upstream), "manifests-cluster")
    base1 = w.serve(["--manifests", str(path)], "--redis-url", url, name="cluster-gw1")
    base2 = w.serve(["--manifests", str(path)], "--redis-url", url, "--workers", "2", name="cluster-gw2")
    avoid_hour_edge()
    port = int(url.rsplit(":", 1)[1])
    nodes = {redisha.slot_owner(port, f"llmp:{{{t}/{t}}}:t:reqh:") for t in TENANTS[:3]}
    assert len(nodes) > 1, "the tenants' counters should live on different primaries"
    for tenant in TENANTS[:3]:
        codes = asyncio.run(burst([base1, base2], tenant, 3 * HOURLY))
        assert codes.count(200) == HOURLY, (tenant, sorted(codes))
        assert set(codes) == {200, 429}
    for base in (base1, base2):
        assert httpx.get(base + "/readyz").json()["limiter"] == "redis"
    used = httpx.get(base2 + "/v1/llmplatform/usage", headers={"Authorization": f"Bearer {key('t1')}"})
    assert used.json()["limiter"] == "redis"


async def load(
    bases: list[str], tenant: str, stop: asyncio.Event, log: list[tuple[float, int]], clients: int = 4
) -> None:
    """`clients` loops sending one request after another until `stop`; (time, status) into log."""
    async with httpx.AsyncClient(timeout=30) as c:

        async def loop(i: int) -> None:
            while not stop.is_set():
                code = await post(c, bases[i % len(bases)], tenant)
                log.append((time.monotonic(), code))
                await asyncio.sleep(0.02)

        await asyncio.gather(*(loop(i) for i in range(clients)))


def limiter_states(bases: list[str]) -> set[str]:
    states = set()
    for base in bases:
        try:
            states.add(httpx.get(base + "/readyz", timeout=2).json()["limiter"])
        except (httpx.HTTPError, ValueError):
            states.add("no answer")
    return states


@pytest.fixture(scope="module")
def sentinels(gateway_world: h.World) -> Iterator[redisha.SentinelSet]:
    s = redisha.SentinelSet(gateway_world.tmp / "sentinel")
    yield s
    s.close()


def test_sentinel_failover_under_load_recovers_on_the_promoted_replica(
    gateway_world: h.World, upstream: str, sentinels: redisha.SentinelSet
) -> None:
    w = gateway_world
    url = sentinels.url
    path = w.manifests(docs(upstream), "manifests-sentinel")
    source = ["--manifests", str(path)]
    open_bases = [
        w.serve(source, "--redis-url", url, name="sentinel-local1"),
        w.serve(source, "--redis-url", url, "--workers", "2", name="sentinel-local2"),
    ]
    closed_bases = [
        w.serve(source, "--redis-url", url, "--redis-failure-mode", "refuse", name="sentinel-refuse")
    ]
    avoid_hour_edge()
    # t1 behind the fail-open gateways (3 processes), t2 behind the fail-closed one: both at
    # their limit before the primary dies, so every admission afterwards is over the limit
    for tenant, bases in (("t1", open_bases), ("t2", closed_bases)):
        codes = asyncio.run(burst(bases, tenant, HOURLY + 5))
        assert codes.count(200) == HOURLY, sorted(codes)
    old_primary = sentinels.primary_address()

    async def scenario() -> dict[str, Any]:
        stop = asyncio.Event()
        open_log: list[tuple[float, int]] = []
        closed_log: list[tuple[float, int]] = []
        loads = [
            asyncio.create_task(load(open_bases, "t1", stop, open_log)),
            asyncio.create_task(load(closed_bases, "t2", stop, closed_log)),
        ]
        await asyncio.sleep(1.0)
        killed = time.monotonic()
        sentinels.kill_primary()
        recovered = None
        while time.monotonic() - killed < 30:
            await asyncio.sleep(0.2)
            states = await asyncio.to_thread(limiter_states, open_bases + closed_bases)
            if states == {"redis"} and sentinels.primary_address() != old_primary:
                recovered = time.monotonic() - killed
                break
        await asyncio.sleep(3.0)  # more load on the promoted replica
        stop.set()
        await asyncio.gather(*loads)
        return {"killed": killed, "recovered": recovered, "open": open_log, "closed": closed_log}

    got = asyncio.run(scenario())
    killed, recovered = got["killed"], got["recovered"]
    assert recovered is not None, f"no recovery in 30 s: {limiter_states(open_bases + closed_bases)}"
    open_after = [code for t, code in got["open"] if t >= killed]
    closed_after = [code for t, code in got["closed"] if t >= killed]
    after_recovery = [code for t, code in got["open"] + got["closed"] if t >= killed + recovered + 1.5]
    print(
        f"\nsentinel failover: recovered in {recovered:.1f} s; over-admission fail-open (local, "
        f"3 processes, limit {HOURLY}/h): {open_after.count(200)} of {len(open_after)} requests; "
        f"fail-closed (refuse): {closed_after.count(200)} admitted, {closed_after.count(503)} answered 503, "
        f"of {len(closed_after)}"
    )
    assert recovered <= 10.0
    # the promoted replica had the counters: nothing is admitted once the gateways are back on it
    assert after_recovery and set(after_recovery) == {429}, sorted(set(after_recovery))
    # fail-closed admits nothing over the limit; fail-open at most the limit once per process
    assert closed_after.count(200) == 0 and closed_after.count(503) > 0
    assert open_after.count(200) <= 3 * HOURLY


def test_local_fallback_goes_on_from_the_shared_count(gateway_world: h.World, upstream: str) -> None:
    """A worker that saw a tenant at its limit in Redis keeps refusing it when Redis goes away
    (`local` mode starts from the last shared count it saw, not from zero), while a tenant with
    headroom left is still served, up to that headroom."""
    w = gateway_world
    redis, url = h.start_redis(w.tmp)
    w.procs.append(redis)
    path = w.manifests(docs(upstream), "manifests-fallback")
    base = w.serve(["--manifests", str(path)], "--redis-url", url, name="fallback-gw")
    avoid_hour_edge()
    assert asyncio.run(burst([base], "t5", HOURLY + 3)).count(200) == HOURLY
    assert asyncio.run(burst([base], "t6", HOURLY - 2)).count(200) == HOURLY - 2
    redis.stop()
    wait_for(lambda: limiter_states([base]) == {"redis unreachable (local)"}, 10, "the local fallback")
    assert set(asyncio.run(burst([base], "t5", 5))) == {429}
    assert sorted(asyncio.run(burst([base], "t6", 5))) == [200, 200, 429, 429, 429]


def test_tls_redis_keeps_limits_exact(gateway_world: h.World, upstream: str) -> None:
    """`rediss://` to a Redis that speaks only TLS, trusting its CA (`ssl_ca_certs`)."""
    w = gateway_world
    redis, url = redisha.start_tls_server(w.tmp)
    w.procs.append(redis)
    path = w.manifests(docs(upstream), "manifests-tls")
    bases = [
        w.serve(["--manifests", str(path)], "--redis-url", url, name="tls-gw1"),
        w.serve(["--manifests", str(path)], "--redis-url", url, name="tls-gw2"),
    ]
    avoid_hour_edge()
    codes = asyncio.run(burst(bases, "t4", 2 * HOURLY))
    assert codes.count(200) == HOURLY and set(codes) == {200, 429}
    assert limiter_states(bases) == {"redis"}
