"""The operator against the real control plane: every behaviour issue #3 names.

Each test runs its own `llmplatform operator` process (leader election on, metrics on) that
watches a fresh platform namespace and a fresh tenant namespace, so tests cannot see each
other's default policies.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import time
from typing import Any

import pytest
from kubernetes import client

from llmplatform_testing.chart import one, template
from llmplatform_testing.controlplane import Cluster
from llmplatform_testing.kube import (
    CM_NAME,
    GROUP,
    PLURAL,
    VERSION,
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

# --------------------------------------------------------------------------- workloads


def test_serving_model_children_ready_status_and_cascade_delete(cluster: Cluster, operator_env: Any) -> None:
    api, p = Api(cluster), operator_env.platform
    op = operator_env()
    created = api.create(model("llama", p, serving=True, tier="efficient"))
    uid = created["metadata"]["uid"]
    dep = wait_for(lambda: api.apps.read_namespaced_deployment("llmm-llama", p), 30, "the Deployment")
    svc = wait_for(lambda: api.core.read_namespaced_service("llmm-llama", p), 30, "the Service")
    hpa = wait_for(
        lambda: api.autoscaling.read_namespaced_horizontal_pod_autoscaler("llmm-llama", p), 30, "HPA"
    )
    netpol = wait_for(
        lambda: api.net.read_namespaced_network_policy("llmm-llama", p), 30, "the NetworkPolicy"
    )
    for child in (dep, svc, hpa, netpol):
        (owner,) = child.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == ("LLMModel", "llama", uid, True)
        assert "team" not in (child.metadata.labels or {}), "parent labels must not be copied to children"
        assert "argocd.argoproj.io/instance" not in (child.metadata.labels or {})
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 3)
    # Only gateway pods from the platform namespace may reach the model server.
    (rule,) = netpol.spec.ingress
    (peer,) = rule._from
    assert peer.pod_selector.match_labels == {"app.kubernetes.io/name": "llmplatform-gateway"}
    assert peer.namespace_selector.match_labels == {"kubernetes.io/metadata.name": p}

    # Ready follows the Deployment's available replicas (kwok runs the pods).
    cond = wait_for(lambda: is_true(api.condition("LLMModel", p, "llama", "Ready")), 60, "Ready=True")
    status = api.get("LLMModel", p, "llama")["status"]
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status["readyReplicas"] >= 1 and status["endpoint"].startswith("http://llmm-llama.")
    assert cond
    ready = api.condition("LLMModel", p, "llama", "Ready")
    assert ready and ready["reason"] == "DeploymentAvailable" and ready["observedGeneration"] == 1
    events = api.core.list_namespaced_event(p, field_selector="involvedObject.name=llama").items
    assert any(e.reason == "DeploymentAvailable" for e in events), [e.reason for e in events]

    # max == min: the HPA goes away; the Deployment then carries the replica count.
    api.patch("LLMModel", p, "llama", {"spec": {"serving": {"replicas": {"min": 2, "max": 2}}}})
    wait_for(
        lambda: not api.autoscaling.list_namespaced_horizontal_pod_autoscaler(p).items, 30, "HPA removed"
    )
    wait_for(
        lambda: api.apps.read_namespaced_deployment("llmm-llama", p).spec.replicas == 2, 30, "replicas 2"
    )

    api.custom.delete_namespaced_custom_object(
        GROUP, VERSION, p, "llmmodels", "llama", propagation_policy="Foreground"
    )
    wait_for(lambda: not api.apps.list_namespaced_deployment(p).items, 60, "the Deployment to be collected")
    wait_for(
        lambda: not [s for s in api.core.list_namespaced_service(p).items if s.metadata.name == "llmm-llama"],
        60,
        "the Service to be collected",
    )
    assert op.proc and op.proc.poll() is None


def test_drift_is_repaired(cluster: Cluster, operator_env: Any) -> None:
    api, p = Api(cluster), operator_env.platform
    operator_env()
    api.create(model("vllm", p, serving=True))
    dep = wait_for(lambda: api.apps.read_namespaced_deployment("llmm-vllm", p), 30, "the Deployment")
    (container,) = dep.spec.template.spec.containers
    wait_for(lambda: api.net.read_namespaced_network_policy("llmm-vllm", p), 30, "the NetworkPolicy")
    # Someone edits the image and deletes the Service and the NetworkPolicy by hand.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": container.name, "image": "evil:1"}]}}}}
    edited = api.apps.patch_namespaced_deployment("llmm-vllm", p, patch)
    assert [c.image for c in edited.spec.template.spec.containers] == ["evil:1"]
    api.core.delete_namespaced_service("llmm-vllm", p)
    api.net.delete_namespaced_network_policy("llmm-vllm", p)
    t0 = time.monotonic()

    def repaired() -> bool:
        dep = api.apps.read_namespaced_deployment("llmm-vllm", p)
        images = [c.image for c in dep.spec.template.spec.containers]
        api.core.read_namespaced_service("llmm-vllm", p)
        api.net.read_namespaced_network_policy("llmm-vllm", p)
        return images == ["vllm/vllm-openai:v0.6.3"]

    wait_for(repaired, 30, "the hand edits to be reverted")
    assert time.monotonic() - t0 < 30


# --------------------------------------------------------------------------- policies and the ConfigMap


def test_policy_naming_a_missing_model_is_not_ready_until_it_exists(
    cluster: Cluster, operator_env: Any
) -> None:
    api, p = Api(cluster), operator_env.platform
    operator_env()
    api.create(model("m1", p))
    api.create(policy("default", p, {"standard": ["m1", "ghost"]}))
    cond = wait_for(
        lambda: (c := api.condition("RoutingPolicy", p, "default", "Ready")) and c["status"] == "False" and c,
        30,
        "Ready=False",
    )
    assert "ghost" in cond["message"], cond
    api.create(model("ghost", p, tier="standard"))
    wait_for(lambda: is_true(api.condition("RoutingPolicy", p, "default", "Ready")), 30, "Ready=True")
    config = wait_for(lambda: api.config(p), 30, "the ConfigMap")
    assert sorted(m["name"] for m in config["models"]) == ["ghost", "m1"]
    events = api.core.list_namespaced_event(p, field_selector="involvedObject.name=default").items
    assert {e.type for e in events} >= {"Warning", "Normal"}


def test_second_default_policy_is_reported(cluster: Cluster, operator_env: Any) -> None:
    api, p = Api(cluster), operator_env.platform
    operator_env()
    api.create(model("m1", p))
    api.create(policy("first", p, {"standard": ["m1"]}))
    time.sleep(1.1)  # creationTimestamp has one-second resolution: the older one wins
    api.create(policy("second", p, {"standard": ["m1"]}))
    cond = wait_for(
        lambda: (c := api.condition("RoutingPolicy", p, "second", "Ready")) and c["status"] == "False" and c,
        30,
        "the second default to be reported",
    )
    assert "first" in cond["message"], cond
    # the pass writes statuses in parallel: first's may land just after second's
    wait_for(lambda: is_true(api.condition("RoutingPolicy", p, "first", "Ready")), 30, "first Ready")
    assert wait_for(lambda: api.config(p), 30, "config")["defaultPolicy"] == f"{p}/first"


def test_configmap_is_written_only_when_its_content_changes(cluster: Cluster, operator_env: Any) -> None:
    api, p = Api(cluster), operator_env.platform
    op = operator_env()
    api.create(model("m1", p))
    api.create(policy("default", p, {"standard": ["m1"]}))
    wait_for(lambda: is_true(api.condition("RoutingPolicy", p, "default", "Ready")), 30, "policy Ready")
    rv = api.core.read_namespaced_config_map(CM_NAME, p).metadata.resource_version
    passes = op.metric("llmplatform_operator_passes_total")
    # A change that does not affect the config: a label on the model.
    api.patch("LLMModel", p, "m1", {"metadata": {"labels": {"cost-center": "42"}}})
    op.wait_passes(passes + 1)
    assert api.core.read_namespaced_config_map(CM_NAME, p).metadata.resource_version == rv
    # A change that does: the price.
    api.patch("LLMModel", p, "m1", {"spec": {"pricing": {"inputPerMillionTokens": 3.5}}})
    wait_for(
        lambda: api.config(p)["models"][0]["pricing"]["inputPerMillionTokens"] == 3.5, 30, "the new price"
    )
    cm = api.core.read_namespaced_config_map(CM_NAME, p)
    assert cm.metadata.resource_version != rv
    assert (
        cm.metadata.annotations["llmplatform.io/config-hash"]
        == json.loads(cm.data["config.json"])["contentHash"]
    )


# --------------------------------------------------------------------------- quotas and keys


def test_quota_over_ceiling_keeps_the_previous_grant(cluster: Cluster, operator_env: Any) -> None:
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    operator_env()
    api.create(model("m1", p))
    api.create(policy("default", p, {"standard": ["m1"]}, tenantCeilings={"requestsPerMinute": 100}))
    api.create(quota("team", t, limits={"requestsPerMinute": 50}))
    wait_for(lambda: is_true(api.condition("TenantQuota", t, "team", "Approved")), 30, "Approved")
    granted = api.get("TenantQuota", t, "team")["status"]["granted"]
    assert granted["requestsPerMinute"] == 50

    api.patch("TenantQuota", t, "team", {"spec": {"limits": {"requestsPerMinute": 500}}})
    cond = wait_for(
        lambda: (c := api.condition("TenantQuota", t, "team", "Approved")) and c["status"] == "False" and c,
        30,
        "Approved=False",
    )
    assert "requestsPerMinute" in cond["message"] and cond["observedGeneration"] == 2, cond
    status = api.get("TenantQuota", t, "team")["status"]
    assert status["granted"] == granted, "the earlier grant must stay in force"
    tenant = next(x for x in api.config(p)["tenants"] if x["name"] == "team")
    assert tenant["limits"]["requestsPerMinute"] == 50

    api.patch("TenantQuota", t, "team", {"spec": {"limits": {"requestsPerMinute": 80}}})
    wait_for(
        lambda: (
            next(x for x in api.config(p)["tenants"] if x["name"] == "team")["limits"]["requestsPerMinute"]
            == 80
        ),
        30,
        "the new grant in the ConfigMap",
    )
    assert is_true(api.condition("TenantQuota", t, "team", "Approved"))


def test_keys_are_generated_rotated_and_never_leak(cluster: Cluster, operator_env: Any) -> None:
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    op = operator_env()
    api.create(model("m1", p))
    api.create(policy("default", p, {"standard": ["m1"]}))
    created = api.create(quota("team", t, apiKeys=[{"name": "app", "user": "svc", "role": "admin"}]))
    secret = wait_for(lambda: api.core.read_namespaced_secret("team-app", t), 30, "the key Secret")
    (owner,) = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("TenantQuota", "team", created["metadata"]["uid"])
    key = api.secret_value(t, "team-app")
    assert len(key) >= 40

    def config_hashes() -> list[str]:
        tenants = [x for x in api.config(p)["tenants"] if x["name"] == "team"]
        return [k["sha256"] for x in tenants for k in x["keys"]]

    wait_for(
        lambda: config_hashes() == [hashlib.sha256(key.encode()).hexdigest()], 30, "the key hash in config"
    )
    # the status is written after the config: wait for it rather than race it
    secrets = wait_for(
        lambda: (api.get("TenantQuota", t, "team").get("status") or {}).get("apiKeySecrets"),
        30,
        "status.apiKeySecrets",
    )
    assert secrets == [{"name": "app", "secretName": "team-app", "key": "api-key"}]

    # Deleting the Secret rotates the key.
    api.core.delete_namespaced_secret("team-app", t)
    new_key = wait_for(
        lambda: (v := api.secret_value(t, "team-app")) != key and v, 30, "a new key in a new Secret"
    )
    wait_for(lambda: config_hashes() == [hashlib.sha256(new_key.encode()).hexdigest()], 30, "the new hash")

    cm = api.core.read_namespaced_config_map(CM_NAME, p)
    dumped = json.dumps(cm.to_dict(), default=str)
    for k in (key, new_key):
        assert k not in dumped, "a key reached the ConfigMap"
        assert k not in op.log(), "a key reached the operator log"
        assert base64.b64encode(k.encode()).decode() not in op.log()


def test_key_from_secret_ref_and_upstream_credentials_stay_out(cluster: Cluster, operator_env: Any) -> None:
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    operator_env()
    upstream = "sk-upstream-credential-0123456789"
    tenant_key = "tenant-key-from-git-0123456789"
    api.core.create_namespaced_secret(
        p, client.V1Secret(metadata=client.V1ObjectMeta(name="provider"), string_data={"key": upstream})
    )
    api.core.create_namespaced_secret(
        t, client.V1Secret(metadata=client.V1ObjectMeta(name="sealed"), string_data={"token": tenant_key})
    )
    m1 = model("m1", p)
    m1["spec"]["endpoint"]["apiKeySecretRef"] = {"name": "provider", "key": "key"}
    api.create(m1)
    api.create(policy("default", p, {"standard": ["m1"]}))
    api.create(
        quota(
            "team",
            t,
            apiKeys=[
                {
                    "name": "git",
                    "user": "ci",
                    "role": "readonly",
                    "secretRef": {"name": "sealed", "key": "token"},
                }
            ],
        )
    )
    wait_for(lambda: is_true(api.condition("TenantQuota", t, "team", "Ready")), 30, "quota Ready")
    config = api.config(p)
    (tenant,) = [x for x in config["tenants"] if x["name"] == "team"]
    assert [k["sha256"] for k in tenant["keys"]] == [hashlib.sha256(tenant_key.encode()).hexdigest()]
    text = json.dumps(config)
    assert upstream not in text and tenant_key not in text
    assert config["models"][0]["apiKeySecretRef"] == {"namespace": p, "name": "provider", "key": "key"}
    assert not [s for s in api.core.list_namespaced_secret(t).items if s.metadata.name.startswith("team-")]


def test_a_model_is_ready_only_when_the_gateway_mounts_its_secret(
    cluster: Cluster, operator_env: Any
) -> None:
    """#16.1: the quickstart left `gateway.providerSecrets` empty and the model said Ready. With
    `--gateway-deployment` (as the chart runs it) the operator reads the chart's own gateway
    Deployment, rendered by `helm template`: the Secret exists, but until the Deployment mounts
    it the model is Ready=False (CredentialsNotMounted, naming the Secret and the chart value,
    with a Warning Event) and out of the gateway config; the chart with the value set makes it
    Ready. The keyless model is Ready throughout."""
    api, p = Api(cluster), operator_env.platform
    chart_gateway = one(template(p), "Deployment", "-gateway")
    name = chart_gateway["metadata"]["name"]
    operator_env(start=False).start(f"--gateway-deployment={name}")
    api.core.create_namespaced_secret(
        p, client.V1Secret(metadata=client.V1ObjectMeta(name="provider"), string_data={"api-key": "sk-1"})
    )
    m1 = model("m1", p)
    m1["spec"]["endpoint"]["apiKeySecretRef"] = {"name": "provider", "key": "api-key"}
    api.create(m1)
    api.create(model("keyless", p))
    api.create(policy("default", p, {"standard": ["m1", "keyless"]}))

    def ready(name: str, reason: str, text: str = "") -> dict[str, Any] | None:
        c = api.condition("LLMModel", p, name, "Ready")
        return c if c and c["reason"] == reason and text in c["message"] else None

    # no gateway Deployment at all
    cond = wait_for(lambda: ready("m1", "CredentialsNotMounted", "does not exist"), 30, "m1 not Ready")
    assert cond["status"] == "False" and f"Deployment {p}/{name}" in cond["message"], cond
    wait_for(lambda: is_true(api.condition("LLMModel", p, "keyless", "Ready")), 30, "keyless Ready")

    # the chart's gateway with the default values: it mounts no provider Secret
    chart_gateway["spec"]["replicas"] = 0  # only its pod template matters here
    api.apps.create_namespaced_deployment(p, chart_gateway)
    cond = wait_for(lambda: ready("m1", "CredentialsNotMounted", "gateway.providerSecrets"), 30, "the hint")
    assert cond["status"] == "False" and f"does not mount Secret {p}/provider" in cond["message"], cond
    assert "--set 'gateway.providerSecrets={provider}'" in cond["message"], cond
    assert [m["name"] for m in api.config(p)["models"]] == ["keyless"]
    wait_for(
        lambda: any(
            (ty, r) == ("Warning", "CredentialsNotMounted") and "Ready=False" in msg
            for ty, r, msg in events(api, p, "m1")
        ),
        30,
        "a Warning Event on m1",
    )

    # `helm upgrade --set gateway.providerSecrets={provider}`: the Deployment now mounts it
    mounted = one(template(p, "gateway.providerSecrets={provider}"), "Deployment", "-gateway")
    mounted["spec"]["replicas"] = 0
    api.apps.patch_namespaced_deployment(name, p, mounted)
    wait_for(lambda: ready("m1", "Configured"), 30, "m1 Ready once mounted")
    assert is_true(api.condition("LLMModel", p, "m1", "Ready"))
    wait_for(
        lambda: {m["name"] for m in api.config(p)["models"]} == {"m1", "keyless"}, 30, "m1 in the config"
    )
    wait_for(
        lambda: any((ty, r) == ("Normal", "Configured") for ty, r, _ in events(api, p, "m1")),
        30,
        "a Normal Event once Ready",
    )


def test_losing_the_default_policy_keeps_the_tenants(cluster: Cluster, operator_env: Any) -> None:
    """#16.3: `default: false` on the only policy (then deleting it) is not an outage."""
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    op = operator_env()
    api.create(model("m1", p))
    api.create(
        policy(
            "default",
            p,
            {"standard": ["m1"]},
            tenantCeilings={"requestsPerMinute": 100},
            fallback={"maxAttempts": 3},
        )
    )
    api.create(
        quota(
            "team",
            t,
            limits={"requestsPerMinute": 40},
            apiKeys=[{"name": "app", "user": "svc", "role": "admin"}],
        )
    )
    wait_for(lambda: is_true(api.condition("TenantQuota", t, "team", "Ready")), 30, "team Ready")
    before = wait_for(lambda: tenant_entry(api, p, "team"), 30, "the tenant in the config")
    policy_before = next(x for x in api.config(p)["policies"] if x["name"] == "default")

    api.patch("RoutingPolicy", p, "default", {"spec": {"default": False}})
    cond = wait_for(
        lambda: (c := api.condition("TenantQuota", t, "team", "Approved")) and c["status"] == "False" and c,
        30,
        "Approved=False",
    )
    assert cond["reason"] == "PolicyNotFound" and "stays in force" in cond["message"], cond
    ready = api.condition("TenantQuota", t, "team", "Ready")
    assert ready and (ready["status"], ready["reason"]) == ("True", "PreviousGrantInForce"), ready
    wait_for(
        lambda: any(r == "PolicyNotFound" and ty == "Warning" for ty, r, _ in events(api, t, "team")),
        30,
        "a Warning Event saying why",
    )
    config = wait_for(lambda: (c := api.config(p))["defaultPolicy"] is None and c, 30, "no default policy")
    assert tenant_entry(api, p, "team") == before, "the tenant's entry must stay as it was"
    assert api.get("TenantQuota", t, "team")["status"]["granted"]["requestsPerMinute"] == 40
    assert [x["name"] for x in config["policies"]] == ["default"]

    # Deleted outright: its last entry is carried over, the tenant stays.
    api.delete("RoutingPolicy", p, "default")
    wait_for(
        lambda: "as last rendered" in (api.condition("TenantQuota", t, "team", "Approved") or {})["message"],
        30,
        "the carried-over policy in the condition",
    )
    one_more_pass(api, op, p)
    assert tenant_entry(api, p, "team") == before
    (carried,) = api.config(p)["policies"]
    assert carried == {**policy_before, "default": False}

    # Restored: admitted again under the policy, as the default.
    api.create(policy("default", p, {"standard": ["m1"]}, tenantCeilings={"requestsPerMinute": 100}))
    wait_for(lambda: is_true(api.condition("TenantQuota", t, "team", "Approved")), 30, "Approved again")
    wait_for(lambda: api.config(p)["defaultPolicy"] == f"{p}/default", 30, "the default policy back")
    ready = api.condition("TenantQuota", t, "team", "Ready")
    assert ready and (ready["status"], ready["reason"]) == ("True", "Configured"), ready
    assert tenant_entry(api, p, "team") == before


# --------------------------------------------------------------------------- restarts, leases, GitOps


def _versions(api: Api, p: str, t: str) -> dict[str, str]:
    """resourceVersion of everything the operator writes. Deployments and HPAs also get status
    updates from the controller manager, so for them: when the operator last wrote them."""
    out: dict[str, str] = {}
    for ns in (p, t):
        for kind, plural in PLURAL.items():
            for item in api.custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]:
                out[f"{kind}/{ns}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
        for lister, kind in (
            (api.core.list_namespaced_service, "Service"),
            (api.core.list_namespaced_config_map, "ConfigMap"),
            (api.core.list_namespaced_secret, "Secret"),
            (api.net.list_namespaced_network_policy, "NetworkPolicy"),
            (api.core.list_namespaced_event, "Event"),
        ):
            for obj in lister(ns).items:
                if kind == "Event" and obj.reporting_component != "llmplatform-operator":
                    continue  # the controller manager's events about the HPA are not ours
                out[f"{kind}/{ns}/{obj.metadata.name}"] = obj.metadata.resource_version
        for lister, kind in (
            (api.apps.list_namespaced_deployment, "Deployment"),
            (api.autoscaling.list_namespaced_horizontal_pod_autoscaler, "HPA"),
        ):
            for obj in lister(ns).items:
                mine = [m for m in obj.metadata.managed_fields if m.manager == "llmplatform-operator"]
                out[f"{kind}/{ns}/{obj.metadata.name}"] = str([(m.operation, m.time) for m in mine])
    return out


def _populate(api: Api, p: str, t: str) -> None:
    api.create(model("m1", p))
    api.create(model("served", p, serving=True, tier="efficient"))
    api.create(
        policy(
            "default",
            p,
            {"standard": ["m1"], "efficient": ["served"]},
            tenantCeilings={"requestsPerMinute": 100},
        )
    )
    api.create(
        quota(
            "team",
            t,
            limits={"requestsPerMinute": 10},
            apiKeys=[{"name": "app", "user": "svc", "role": "admin"}],
        )
    )
    wait_for(lambda: is_true(api.condition("TenantQuota", t, "team", "Ready")), 30, "quota Ready")
    wait_for(lambda: is_true(api.condition("LLMModel", p, "served", "Ready")), 60, "served Ready")


def test_restart_makes_no_writes_and_users_objects_stay_untouched(
    cluster: Cluster, operator_env: Any
) -> None:
    api, p, t = Api(cluster), operator_env.platform, operator_env.tenant
    first = operator_env()
    _populate(api, p, t)
    time.sleep(2)  # let the last status writes settle
    before = _versions(api, p, t)
    assert first.stop() == 0
    second = operator_env()
    second.wait_passes(1)
    time.sleep(2)
    assert second.metric("llmplatform_operator_writes_total") == 0, second.log()[-3000:]
    after = _versions(api, p, t)
    changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
    assert not changed, f"objects written on a restart with nothing changed: {changed}"

    # The operator never writes users' specs or metadata: no finalizers, no annotations.
    for kind, ns, name in (
        ("LLMModel", p, "m1"),
        ("RoutingPolicy", p, "default"),
        ("TenantQuota", t, "team"),
    ):
        meta = api.get(kind, ns, name)["metadata"]
        assert not meta.get("finalizers") and not meta.get("annotations"), meta
        managers = {m["manager"]: m.get("subresource") for m in meta["managedFields"]}
        assert managers.get("llmplatform-operator") == "status", managers


def test_one_active_replica_and_failover(cluster: Cluster, operator_env: Any) -> None:
    api, p = Api(cluster), operator_env.platform
    leader = operator_env()
    leader.wait_passes(1)
    standby = operator_env()
    # its imports alone take seconds on a loaded machine: wait for it to reach the Lease
    wait_for(lambda: "waiting for the leader Lease" in standby.log(), 60, "the standby to wait for the Lease")
    time.sleep(2)  # a standby that would wrongly take the Lease does so at once
    assert "became the leader" not in standby.log()
    lease = api.coord.read_namespaced_lease("llmplatform-operator", p)
    assert lease.spec.holder_identity and lease.spec.holder_identity in leader.log()
    # The leader dies without releasing the Lease; the standby takes over once it expires.
    leader.stop(signal.SIGKILL)
    wait_for(lambda: "became the leader" in standby.log(), 30, "the standby to take over")
    api.create(model("after", p))
    wait_for(
        lambda: is_true(api.condition("LLMModel", p, "after", "Ready")), 30, "reconciled by the new leader"
    )


def test_survives_an_api_server_restart(cluster: Cluster, operator_env: Any) -> None:
    if cluster.local is None:
        pytest.skip("restarting the API server needs the local control plane, not LLMPLATFORM_E2E_KUBECONFIG")
    api, p = Api(cluster), operator_env.platform
    op = operator_env()
    api.create(model("before", p))
    wait_for(lambda: is_true(api.condition("LLMModel", p, "before", "Ready")), 30, "before Ready")
    cluster.local.restart_apiserver()
    api = Api(cluster)
    api.create(model("after", p))
    wait_for(lambda: is_true(api.condition("LLMModel", p, "after", "Ready")), 60, "after Ready")
    assert op.proc and op.proc.poll() is None
