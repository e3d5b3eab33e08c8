"""#12 items 16 and 17: a tenant attacking the operator through the Kubernetes API (a real API
server and a real `llmplatform operator` process), the side of the platform a tenant reaches
without the gateway:

- a TenantQuota that names a model provider's Secret as its key Secret would turn the provider
  credential into a tenant key: it is refused (and the platform namespace holds no tenants);
- a quota that was never approved must not get key Secrets minted; a quota whose earlier grant
  stays in force keeps its key.

Marked `e2e`: they need the control plane (the `cluster` and `operator_env` fixtures of
`llmplatform_testing.e2e`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from kubernetes import client

from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import (
    Api,
    events,
    is_true,
    model,
    one_more_pass,
    policy,
    quota,
    tenant_entry,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_quota_using_a_provider_credential_is_refused(cluster: Cluster, operator_env: Any) -> None:
    """#12.16: a TenantQuota in the platform namespace names a model's provider Secret."""
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    op = operator_env()
    upstream = "sk-upstream-credential-9876543210"
    api.core.create_namespaced_secret(
        p, client.V1Secret(metadata=client.V1ObjectMeta(name="provider"), string_data={"key": upstream})
    )
    m1 = model("m1", p)
    m1["spec"]["endpoint"]["apiKeySecretRef"] = {"name": "provider", "key": "key"}
    api.create(m1)
    api.create(policy("default", p, {"standard": ["m1"]}))
    api.create(quota("honest", t, apiKeys=[{"name": "app", "user": "svc", "role": "admin"}]))
    stolen = {"name": "stolen", "user": "x", "role": "admin", "secretRef": {"name": "provider", "key": "key"}}
    api.create(quota("evil", p, apiKeys=[stolen]))
    cond = wait_for(
        lambda: (c := api.condition("TenantQuota", p, "evil", "Approved")) and c["status"] == "False" and c,
        30,
        "the quota to be refused",
    )
    assert cond["reason"] == "ProviderCredential", cond
    assert f"Secret {p}/provider" in cond["message"] and f"LLMModel {p}/m1" in cond["message"], cond
    ready = api.condition("TenantQuota", p, "evil", "Ready")
    assert ready and (ready["status"], ready["reason"]) == ("False", "ProviderCredential"), ready
    wait_for(
        lambda: is_true(api.condition("TenantQuota", t, "honest", "Ready")), 30, "the honest quota Ready"
    )
    wait_for(
        lambda: any(r == "ProviderCredential" and ty == "Warning" for ty, r, _ in events(api, p, "evil")),
        30,
        "a Warning Event on the refused quota",
    )
    one_more_pass(api, op, p)
    config = api.config(p)
    assert [x["name"] for x in config["tenants"]] == ["honest"]
    text = json.dumps(config)
    assert hashlib.sha256(upstream.encode()).hexdigest() not in text and upstream not in text
    assert is_true(api.condition("LLMModel", p, "m1", "Ready")), "the provider model itself is unaffected"


def test_keys_are_minted_only_with_a_grant_in_force(cluster: Cluster, operator_env: Any) -> None:
    """#12.17: a never-approved quota gets no Secret; an over-ceiling edit keeps the keys."""
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    op = operator_env()
    keys = [{"name": "app", "user": "svc", "role": "admin"}]
    api.create(model("m1", p))
    api.create(policy("default", p, {"standard": ["m1"]}, tenantCeilings={"requestsPerMinute": 100}))
    api.create(quota("greedy", t, limits={"requestsPerMinute": 500}, apiKeys=keys))
    api.create(quota("team", t, limits={"requestsPerMinute": 50}, apiKeys=keys))
    wait_for(lambda: is_true(api.condition("TenantQuota", t, "team", "Ready")), 30, "team Ready")
    ready = wait_for(lambda: api.condition("TenantQuota", t, "greedy", "Ready"), 30, "greedy's Ready")
    assert ready["reason"] == "NotAdmitted", ready
    one_more_pass(api, op, p)
    names = [s.metadata.name for s in api.core.list_namespaced_secret(t).items]
    assert "greedy-app" not in names and "team-app" in names, names
    key = api.secret_value(t, "team-app")

    # Over the ceiling: the earlier grant, and with it the key, stays in force.
    api.patch("TenantQuota", t, "team", {"spec": {"limits": {"requestsPerMinute": 500}}})
    wait_for(
        lambda: (c := api.condition("TenantQuota", t, "team", "Approved")) and c["status"] == "False",
        30,
        "team Approved=False",
    )
    one_more_pass(api, op, p)
    assert api.secret_value(t, "team-app") == key
    tenant = tenant_entry(api, p, "team")
    assert tenant and [k["sha256"] for k in tenant["keys"]] == [hashlib.sha256(key.encode()).hexdigest()]
    ready = api.condition("TenantQuota", t, "team", "Ready")
    assert ready and (ready["status"], ready["reason"]) == ("True", "PreviousGrantInForce"), ready

    # Once the greedy quota asks for what it may have, its key is minted.
    api.patch("TenantQuota", t, "greedy", {"spec": {"limits": {"requestsPerMinute": 80}}})
    wait_for(lambda: api.core.read_namespaced_secret("greedy-app", t), 30, "greedy's key Secret")
    wait_for(lambda: is_true(api.condition("TenantQuota", t, "greedy", "Ready")), 30, "greedy Ready")
