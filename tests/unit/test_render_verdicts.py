"""Status verdicts: models, policies (missing models, default conflicts) and quotas (ceilings,
previous grants, keys)."""

from __future__ import annotations

import hashlib

from llmplatform.render import generated_secret_name, render
from render_factories import PLATFORM, endpoint_model, policy, quota, secret, serving_model

CEILINGS = {"requestsPerMinute": 100, "tokensPerDay": 1_000_000, "costPerMonthUSD": 50.0}


# --- models -----------------------------------------------------------------------------


def test_endpoint_model_with_its_secret_is_ready() -> None:
    result = render(
        [endpoint_model("m1", secret=("creds", "api-key"))], [secret("creds", PLATFORM, **{"api-key": "x"})]
    )
    verdict = result.model(PLATFORM, "m1")
    assert verdict is not None
    assert verdict.ready.status == "True" and verdict.in_config
    assert verdict.status_fields() == {"endpoint": "https://m1.example.com/v1"}


def test_missing_secret_keeps_the_model_out_of_the_config() -> None:
    result = render([endpoint_model("m1", secret=("creds", "api-key"))], [])
    verdict = result.model(PLATFORM, "m1")
    assert verdict is not None
    assert (verdict.ready.status, verdict.ready.reason) == ("False", "SecretNotFound")
    assert f"Secret {PLATFORM}/creds not found" in verdict.ready.message
    assert not verdict.in_config
    assert result.gateway_config.models == []


def test_secret_without_the_named_key() -> None:
    result = render(
        [endpoint_model("m1", secret=("creds", "api-key"))], [secret("creds", PLATFORM, other="x")]
    )
    verdict = result.model(PLATFORM, "m1")
    assert verdict is not None
    assert verdict.ready.reason == "SecretKeyNotFound" and "'api-key'" in verdict.ready.message


def test_secret_in_another_namespace_does_not_count() -> None:
    result = render([endpoint_model("m1", secret=("creds", "k"))], [secret("creds", "elsewhere", k="x")])
    verdict = result.model(PLATFORM, "m1")
    assert verdict is not None and not verdict.in_config


def test_serving_model_waits_for_its_deployment() -> None:
    verdict = render([serving_model("llama")], []).model(PLATFORM, "llama")
    assert verdict is not None
    assert verdict.serving and verdict.in_config
    assert (verdict.ready.status, verdict.ready.reason) == ("Unknown", "DeploymentPending")


def test_invalid_model_gets_an_invalid_spec_verdict_and_no_children() -> None:
    bad = endpoint_model("m1")
    bad["spec"]["serving"] = {"image": "x"}
    result = render([bad], [])
    verdict = result.model(PLATFORM, "m1")
    assert verdict is not None
    assert verdict.ready.reason == "InvalidSpec"
    assert "exactly one of endpoint or serving" in verdict.ready.message
    assert [o["kind"] for o in result.objects] == ["ConfigMap"]


def test_objects_being_deleted_are_ignored() -> None:
    model = serving_model("llama")
    model["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    result = render([model], [])
    assert result.models == () and [o["kind"] for o in result.objects] == ["ConfigMap"]


# --- policies ---------------------------------------------------------------------------


def test_policy_names_every_missing_model() -> None:
    result = render(
        [endpoint_model("m1"), policy(tiers={"standard": ["m1", "ghost"], "efficient": ["phantom"]})], []
    )
    verdict = result.policy(PLATFORM, "default")
    assert verdict is not None
    assert (verdict.ready.status, verdict.ready.reason) == ("False", "MissingModels")
    assert "ghost" in verdict.ready.message and "phantom" in verdict.ready.message
    assert verdict.missing_models == ("ghost", "phantom")
    (entry,) = result.gateway_config.policies
    assert [t.models for t in entry.tiers] == [[f"{PLATFORM}/m1"], []]


def test_policy_reports_models_that_exist_but_are_unusable() -> None:
    result = render([endpoint_model("m1", secret=("nope", "k")), policy(tiers={"standard": ["m1"]})], [])
    verdict = result.policy(PLATFORM, "default")
    assert verdict is not None
    assert verdict.ready.reason == "UnusableModels" and verdict.unusable_models == ("m1",)
    assert verdict.missing_models == ()


def test_models_are_resolved_in_the_policys_namespace() -> None:
    result = render([endpoint_model("m1", namespace="other"), policy(tiers={"standard": ["m1"]})], [])
    verdict = result.policy(PLATFORM, "default")
    assert verdict is not None and verdict.missing_models == ("m1",)


def test_ready_policy() -> None:
    verdict = render([endpoint_model("m1"), policy()], []).policy(PLATFORM, "default")
    assert verdict is not None
    assert verdict.ready.status == "True" and verdict.is_default


def test_second_default_policy_is_a_conflict_and_the_oldest_wins() -> None:
    older = policy("b-old", created="2024-01-01T00:00:00Z")
    newer = policy("a-new", created="2024-06-01T00:00:00Z")
    result = render([endpoint_model("m1"), newer, older], [])
    old_v, new_v = result.policy(PLATFORM, "b-old"), result.policy(PLATFORM, "a-new")
    assert old_v is not None and new_v is not None
    assert old_v.is_default and old_v.ready.status == "True"
    assert not new_v.is_default
    assert (new_v.ready.status, new_v.ready.reason) == ("False", "DefaultConflict")
    assert f"{PLATFORM}/b-old" in new_v.ready.message
    assert result.gateway_config.default_policy == f"{PLATFORM}/b-old"
    assert [p.default for p in result.gateway_config.policies] == [False, True]


def test_default_conflict_without_timestamps_is_decided_by_name() -> None:
    result = render([endpoint_model("m1"), policy("zeta"), policy("alpha")], [])
    assert result.gateway_config.default_policy == f"{PLATFORM}/alpha"


def test_default_tier_defaults_to_the_first_tier() -> None:
    result = render([endpoint_model("m1"), policy(tiers={"efficient": ["m1"], "standard": ["m1"]})], [])
    assert result.gateway_config.policies[0].default_tier == "efficient"


# --- quotas -----------------------------------------------------------------------------


def base(*extra: dict) -> list[dict]:
    return [endpoint_model("m1"), policy(ceilings=CEILINGS), *extra]


def test_quota_within_ceilings_is_approved_and_absent_limits_get_the_ceiling() -> None:
    result = render(base(quota(limits={"requestsPerMinute": 60})), [])
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None
    assert (verdict.approved.status, verdict.approved.reason) == ("True", "WithinCeilings")
    assert verdict.granted == {"requestsPerMinute": 60, "tokensPerDay": 1_000_000, "costPerMonthUSD": 50.0}
    assert verdict.ready.status == "True" and verdict.in_config
    assert verdict.policy == f"{PLATFORM}/default"


def test_quota_over_the_ceiling_names_the_limit() -> None:
    result = render(base(quota(limits={"requestsPerMinute": 500, "costPerMonthUSD": 75})), [])
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None
    assert (verdict.approved.status, verdict.approved.reason) == ("False", "ExceedsCeiling")
    assert "requestsPerMinute 500 > ceiling 100" in verdict.approved.message
    assert "costPerMonthUSD" in verdict.approved.message
    assert "tokensPerDay" not in verdict.approved.message


def test_rejected_quota_without_earlier_grant_is_left_out() -> None:
    result = render(base(quota(limits={"requestsPerMinute": 500})), [])
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None
    assert verdict.granted is None and not verdict.in_config
    assert (verdict.ready.status, verdict.ready.reason) == ("False", "NotAdmitted")
    assert "granted" not in verdict.status_fields()
    assert result.gateway_config.tenants == []


def test_rejected_quota_keeps_its_earlier_grant_in_force() -> None:
    earlier = {"requestsPerMinute": 80, "tokensPerDay": 1000}
    result = render(base(quota(limits={"requestsPerMinute": 500}, granted=earlier)), [])
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None
    assert verdict.approved.status == "False"
    assert verdict.granted == earlier and verdict.in_config
    assert verdict.ready.reason == "PreviousGrantInForce"
    (tenant,) = result.gateway_config.tenants
    assert tenant.limits.requests_per_minute == 80 and tenant.limits.tokens_per_day == 1000


def test_approved_request_replaces_the_earlier_grant() -> None:
    result = render(base(quota(limits={"requestsPerMinute": 90}, granted={"requestsPerMinute": 10})), [])
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.granted is not None
    assert verdict.granted["requestsPerMinute"] == 90


def test_quota_naming_a_missing_policy() -> None:
    resources = base(quota(routingPolicy={"name": "nope"}, granted={"requestsPerMinute": 5}))
    verdict = render(resources, []).quota("team-a", "team-a")
    assert verdict is not None
    assert verdict.approved.reason == "PolicyNotFound" and f"{PLATFORM}/nope" in verdict.approved.message
    assert not verdict.in_config and verdict.granted == {"requestsPerMinute": 5}


def test_quota_without_any_default_policy() -> None:
    verdict = render([endpoint_model("m1"), policy(default=False), quota()], []).quota("team-a", "team-a")
    assert verdict is not None and verdict.approved.reason == "PolicyNotFound"


def test_quota_asking_for_a_tier_the_policy_lacks() -> None:
    verdict = render(base(quota(allowedTiers=["premium"])), []).quota("team-a", "team-a")
    assert verdict is not None
    assert verdict.approved.reason == "TierNotInPolicy" and "premium" in verdict.approved.message


def test_generated_keys_are_pending_until_their_secret_exists() -> None:
    keys = [
        {"name": "alice", "user": "alice", "role": "admin"},
        {"name": "bob", "user": "bob", "role": "readonly"},
    ]
    secrets = [secret(generated_secret_name("team-a", "alice"), "team-a", **{"api-key": "k-alice"})]
    result = render(base(quota(keys=keys)), secrets)
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None
    assert [(k.secret_name, k.secret_key, k.generated, k.present) for k in verdict.api_key_secrets] == [
        ("team-a-alice", "api-key", True, True),
        ("team-a-bob", "api-key", True, False),
    ]
    assert verdict.pending_keys == ("bob",)
    assert (verdict.ready.status, verdict.ready.reason) == ("False", "KeysPending")
    assert "team-a-bob" in verdict.ready.message
    (tenant,) = result.gateway_config.tenants
    assert [k.name for k in tenant.keys] == ["alice"]
    assert verdict.status_fields()["apiKeySecrets"] == [
        {"name": "alice", "secretName": "team-a-alice", "key": "api-key"},
        {"name": "bob", "secretName": "team-a-bob", "key": "api-key"},
    ]


def test_keys_from_a_secret_ref() -> None:
    keys = [
        {
            "name": "svc",
            "user": "svc",
            "role": "business_user",
            "secretRef": {"name": "git-key", "key": "token"},
        }
    ]
    result = render(base(quota(keys=keys)), [secret("git-key", "team-a", token="from-git\n")])
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.ready.status == "True"
    (key,) = verdict.api_key_secrets
    assert (key.secret_name, key.secret_key, key.generated) == ("git-key", "token", False)
    (tenant,) = result.gateway_config.tenants
    assert tenant.keys[0].sha256 == hashlib.sha256(b"from-git").hexdigest()


def test_a_key_value_shared_by_two_keys_is_disabled_everywhere() -> None:
    key = [{"name": "k", "user": "u", "role": "admin"}]
    resources = base(quota("team-a", keys=key), quota("team-b", namespace="team-b", keys=key))
    secrets = [
        secret("team-a-k", "team-a", **{"api-key": "same"}),
        secret("team-b-k", "team-b", **{"api-key": "same"}),
    ]
    result = render(resources, secrets)
    assert all(t.keys == [] for t in result.gateway_config.tenants)
    for ns in ("team-a", "team-b"):
        verdict = result.quota(ns, ns)
        assert verdict is not None and verdict.ready.reason == "DuplicateApiKey"


def test_tenant_entry_fields() -> None:
    q = quota(
        organization="Acme",
        allowedTiers=["standard"],
        userLimits={"requestsPerMinute": 5},
        compliance={"frameworks": ["sox", "gdpr"], "region": "EU"},
    )
    (tenant,) = render(base(q), []).gateway_config.tenants
    assert tenant.organization == "Acme" and tenant.allowed_tiers == ["standard"]
    assert tenant.user_limits is not None and tenant.user_limits.requests_per_minute == 5
    assert tenant.compliance.frameworks == ["gdpr", "sox"] and tenant.compliance.region == "EU"


def test_invalid_quota() -> None:
    bad = quota(limits={"requestsPerMinute": -1})
    verdict = render(base(bad), []).quota("team-a", "team-a")
    assert verdict is not None
    assert verdict.approved.reason == "InvalidSpec" and not verdict.in_config
