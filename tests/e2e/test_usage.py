"""Usage in TenantQuota status, end to end: the official openai client calls the gateway, the
gateway counts in a real Redis, the operator copies the counters into `status.usage`.

Why a whole chain: the numbers a tenant reads with `kubectl get tq -o yaml` are only worth
something if they are the ones the gateway enforced, so this test checks the tokens the client
was told it used against what status reports.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import httpx
import openai

from llmplatform_testing import gateway as gh
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import Api, is_true, model, policy, quota, wait_for


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def test_gateway_usage_reaches_tenantquota_status(
    cluster: Cluster, operator_env: Any, tmp_path: Path
) -> None:
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    redis_proc, redis_url = gh.start_redis(tmp_path)
    mock, mock_url = gh.start_mock(tmp_path, "upstream")
    gateway = None
    try:
        operator_env(start=False).start("--usage-redis-url", redis_url, "--usage-seconds", "1")
        m1 = model("m1", p, pricing={"inputPerMillionTokens": 1, "outputPerMillionTokens": 2})
        m1["spec"]["endpoint"]["url"] = mock_url + "/v1"
        api.create(m1)
        api.create(policy("default", p, {"standard": ["m1"]}))
        api.create(quota("team", t, apiKeys=[{"name": "app", "user": "svc", "role": "admin"}]))
        wait_for(lambda: is_true(api.condition("TenantQuota", t, "team", "Ready")), 30, "quota Ready")
        before = wait_for(lambda: api.get("TenantQuota", t, "team")["status"].get("usage"), 30, "usage")
        assert before == {"requestsThisMinute": 0, "tokensToday": 0, "costThisMonthUSD": 0, "day": today()}

        # The gateway serves the ConfigMap the operator wrote, as a pod would mount it.
        cm = api.core.read_namespaced_config_map("llmplatform-gateway-config", p)
        (tmp_path / "config.json").write_text(cm.data["config.json"])
        gateway, base = gh.start_gateway(
            tmp_path, ["--config", str(tmp_path / "config.json")], "--redis-url", redis_url
        )
        key = base64.b64decode(api.core.read_namespaced_secret("team-app", t).data["api-key"]).decode()
        client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        tokens = 0
        for i in range(3):
            reply = client.chat.completions.create(
                model="m1", messages=[{"role": "user", "content": f"hi {i}"}]
            )
            assert reply.usage is not None
            tokens += reply.usage.total_tokens

        def usage() -> dict[str, Any] | None:
            got = api.get("TenantQuota", t, "team")["status"].get("usage") or {}
            return got if got.get("tokensToday") == tokens else None

        got = wait_for(usage, 60, f"status.usage.tokensToday == {tokens}")
        assert got["costThisMonthUSD"] > 0
        assert 0 < got["requestsThisMinute"] <= 3  # fewer only if a minute boundary passed
    finally:
        if gateway is not None:
            gateway.stop()
        mock.stop()
        redis_proc.stop()


def test_spend_survives_a_redis_restart_without_persistence(
    cluster: Cluster, operator_env: Any, tmp_path: Path
) -> None:
    """Spend, restart Redis empty (no persistence) on the same address, spend again: the operator
    restores each tenant's counters from status.usage, so the spend the gateway enforces and the
    status reports never drops below what was spent before the restart."""
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    redis_proc, redis_url = gh.start_redis(tmp_path)
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    mock, mock_url = gh.start_mock(tmp_path, "upstream")
    gateway = None
    try:
        operator_env(start=False).start("--usage-redis-url", redis_url, "--usage-seconds", "1")
        m1 = model("m1", p, pricing={"inputPerMillionTokens": 100000, "outputPerMillionTokens": 100000})
        m1["spec"]["endpoint"]["url"] = mock_url + "/v1"  # 0.1 USD a token: budgets run out fast
        api.create(m1)
        api.create(policy("default", p, {"standard": ["m1"]}))
        app = [{"name": "app", "user": "svc", "role": "admin"}]
        api.create(quota("spender", t, apiKeys=app))
        api.create(quota("capped", t, apiKeys=app, limits={"costPerMonthUSD": 20}))
        for name in ("spender", "capped"):
            wait_for(lambda n=name: is_true(api.condition("TenantQuota", t, n, "Ready")), 30, f"{name} Ready")
        cm = api.core.read_namespaced_config_map("llmplatform-gateway-config", p)
        (tmp_path / "config.json").write_text(cm.data["config.json"])
        gateway, base = gh.start_gateway(
            tmp_path, ["--config", str(tmp_path / "config.json")], "--redis-url", redis_url
        )

        def key(name: str) -> str:
            data = api.core.read_namespaced_secret(f"{name}-app", t).data["api-key"]
            return base64.b64decode(data).decode()

        keys = {name: key(name) for name in ("spender", "capped")}
        clients = {n: openai.OpenAI(base_url=base + "/v1", api_key=k, max_retries=0) for n, k in keys.items()}

        def ask(name: str) -> int:
            try:
                clients[name].chat.completions.create(
                    model="m1", messages=[{"role": "user", "content": "hi"}], max_tokens=5
                )
            except openai.RateLimitError:
                return 429
            return 200

        def enforced(name: str) -> dict[str, Any]:
            """The counters the gateway enforces (read from Redis)."""
            got: dict[str, Any] = httpx.get(
                base + "/v1/llmplatform/usage", headers={"Authorization": f"Bearer {keys[name]}"}
            ).json()
            return got

        def status(name: str) -> dict[str, Any]:
            return api.get("TenantQuota", t, name)["status"].get("usage") or {}

        for _ in range(3):
            assert ask("spender") == 200
        for _ in range(60):  # spend the capped tenant's budget
            if ask("capped") == 429:
                break
        else:
            raise AssertionError("the capped tenant never ran out of budget")
        spent = {n: enforced(n) for n in keys}
        assert spent["spender"]["costThisMonthUSD"] > 0 and spent["capped"]["costThisMonthUSD"] > 10
        for name in keys:  # the checkpoint: status holds what Redis holds
            wait_for(
                lambda n=name: status(n).get("costThisMonthUSD") == spent[n]["costThisMonthUSD"],
                30,
                f"{name}'s spend in status",
            )

        redis_proc.stop()
        redis_proc, _ = gh.start_redis(tmp_path, port=port)  # empty: nothing was persisted

        for name in keys:
            wait_for(
                lambda n=name: (
                    enforced(n)["limiter"] == "redis"
                    and enforced(n)["costThisMonthUSD"] >= spent[n]["costThisMonthUSD"]
                    and enforced(n)["tokensToday"] >= spent[n]["tokensToday"]
                ),
                30,
                f"{name}'s counters restored into Redis",
            )
        assert ask("capped") == 429  # the budget spent before the restart still counts
        for _ in range(2):
            assert ask("spender") == 200
        more = enforced("spender")
        assert more["costThisMonthUSD"] > spent["spender"]["costThisMonthUSD"]
        wait_for(
            lambda: status("spender").get("costThisMonthUSD") == more["costThisMonthUSD"],
            30,
            "the spend after the restart in status, on top of the spend before it",
        )
        assert status("spender")["tokensToday"] >= spent["spender"]["tokensToday"]
        assert status("capped")["costThisMonthUSD"] >= spent["capped"]["costThisMonthUSD"]
    finally:
        if gateway is not None:
            gateway.stop()
        mock.stop()
        redis_proc.stop()


def test_usage_restore_on_a_redis_cluster(tmp_path: Path) -> None:
    """The operator's side alone, on a 3-primary Redis Cluster: usage of tenants on different
    primaries is read per slot; after every primary is flushed (Redis lost its data) each
    tenant is restored from its checkpoint once; a counter settled below the checkpoint while
    Redis kept its data is left alone."""
    import redis

    from llmplatform.contract.usage import tenant_usage_keys
    from llmplatform.operator.usage import RedisUsage
    from llmplatform_testing import redisha

    procs, url = redisha.start_cluster(tmp_path)
    try:
        ports = [int(hp.rsplit(":", 1)[1]) for hp in url.removeprefix("redis+cluster://").split(",")]
        direct = redis.RedisCluster(host="127.0.0.1", port=ports[0])
        tenants = [f"ns{i}/q{i}" for i in range(6)]
        assert len({redisha.slot_owner(ports[0], f"llmp:{{{t}}}:") for t in tenants}) > 1
        now = time.time()
        for i, tid in enumerate(tenants):
            for _field, key, micro in tenant_usage_keys(tid, now):
                direct.set(key, (i + 1) * (1_000_000 if micro else 100), ex=3600)
        reader = RedisUsage(url)
        first = reader.read(dict.fromkeys(tenants))
        assert first is not None and reader.restored == 0
        assert first["ns2/q2"]["tokensToday"] == 300 and first["ns2/q2"]["costThisMonthUSD"] == 3.0
        assert first["ns2/q2"]["day"] == today()

        for port in ports:
            assert "OK" in redisha.cli_call(port, "FLUSHALL")
        restored = reader.read(first)
        assert restored is not None and reader.restored == len(tenants)
        for tid in tenants:
            assert restored[tid]["tokensToday"] == first[tid]["tokensToday"]
            assert restored[tid]["costThisMonthUSD"] == first[tid]["costThisMonthUSD"]
            assert restored[tid]["requestsThisMinute"] == 0  # the minute is not checkpointed

        _, tokens_key, _ = tenant_usage_keys("ns0/q0", time.time())[1]
        direct.decrby(tokens_key, 50)  # a settlement gave tokens back
        again = reader.read(first)
        assert again is not None and again["ns0/q0"]["tokensToday"] == first["ns0/q0"]["tokensToday"] - 50
        assert reader.restored == len(tenants)
        direct.close()
    finally:
        for proc in procs:
            proc.stop()
