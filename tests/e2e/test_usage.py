"""Usage in TenantQuota status, end to end: the official openai client calls the gateway, the
gateway counts in a real Redis, the operator copies the counters into `status.usage`.

Why a whole chain: the numbers a tenant reads with `kubectl get tq -o yaml` are only worth
something if they are the ones the gateway enforced, so this test checks the tokens the client
was told it used against what status reports.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import openai

from llmplatform_testing import gateway as gh
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import Api, is_true, model, policy, quota, wait_for


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
        assert before == {"requestsThisMinute": 0, "tokensToday": 0, "costThisMonthUSD": 0}

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
