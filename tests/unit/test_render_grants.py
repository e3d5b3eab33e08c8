"""Grants in force: provider credentials are never tenant keys, keys are minted only with a
grant in force, and losing the RoutingPolicy keeps the earlier grant (issues #12.16, #12.17,
#16.3), plus the key Secret body the core renders for the operator."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from llmplatform.render import (
    QUOTA_LABEL,
    GeneratedKey,
    config_from_config_map,
    config_map,
    render,
)
from render_factories import PLATFORM, endpoint_model, policy, quota, secret

CEILINGS = {"requestsPerMinute": 100}
PROVIDER_KEY = "sk-provider-credential-0123456789"
APP_KEY = [{"name": "app", "user": "svc", "role": "admin"}]


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def provider_model() -> dict[str, Any]:
    return endpoint_model("m1", secret=("openai", "key"))


def provider_secret() -> dict[str, Any]:
    return secret("openai", PLATFORM, key=PROVIDER_KEY)


# --- #12.16: a provider credential is never a tenant key --------------------------------


def test_quota_reading_a_provider_secret_is_refused_and_the_key_stays_out() -> None:
    keys = [{"name": "stolen", "user": "x", "role": "admin", "secretRef": {"name": "openai", "key": "key"}}]
    tenant_quota = quota("evil", namespace=PLATFORM, keys=keys, granted={"requestsPerMinute": 5})
    result = render([provider_model(), policy(), tenant_quota], [provider_secret()])
    verdict = result.quota(PLATFORM, "evil")
    assert verdict is not None
    assert (verdict.approved.status, verdict.approved.reason) == ("False", "ProviderCredential")
    assert (verdict.ready.status, verdict.ready.reason) == ("False", "ProviderCredential")
    assert f"Secret {PLATFORM}/openai" in verdict.approved.message
    assert f"LLMModel {PLATFORM}/m1" in verdict.approved.message
    assert not verdict.in_config and result.gateway_config.tenants == []
    assert sha(PROVIDER_KEY) not in result.config_json
    assert result.generated_keys == ()
    # the provider itself is unaffected
    assert [m.id for m in result.gateway_config.models] == [f"{PLATFORM}/m1"]


def test_a_generated_key_whose_secret_name_is_a_provider_secret_is_refused() -> None:
    # quota "open" with key "ai" would read (and never mint) Secret "open-ai"
    model = endpoint_model("m1", secret=("open-ai", "api-key"))
    creds = secret("open-ai", PLATFORM, **{"api-key": PROVIDER_KEY})
    tenant_quota = quota("open", namespace=PLATFORM, keys=[{"name": "ai", "user": "u", "role": "admin"}])
    result = render([model, policy(), tenant_quota], [creds])
    verdict = result.quota(PLATFORM, "open")
    assert verdict is not None and verdict.approved.reason == "ProviderCredential"
    assert result.gateway_config.tenants == [] and result.generated_keys == ()
    assert sha(PROVIDER_KEY) not in result.config_json


def test_a_copy_of_a_provider_key_in_another_secret_is_refused() -> None:
    keys = [{"name": "copy", "user": "x", "role": "admin", "secretRef": {"name": "mine", "key": "k"}}]
    result = render(
        [provider_model(), policy(), quota(keys=keys)],
        [provider_secret(), secret("mine", "team-a", k=PROVIDER_KEY + "\n")],
    )
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.approved.reason == "ProviderCredential"
    assert "has the value of the provider credential of LLMModel" in verdict.approved.message
    assert result.gateway_config.tenants == []


def test_a_same_named_secret_in_the_tenants_namespace_is_not_a_provider_secret() -> None:
    keys = [{"name": "own", "user": "x", "role": "admin", "secretRef": {"name": "openai", "key": "key"}}]
    result = render(
        [provider_model(), policy(), quota(keys=keys)],
        [provider_secret(), secret("openai", "team-a", key="tenant-own-key")],
    )
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.approved.reason == "WithinCeilings" and verdict.in_config
    (tenant,) = result.gateway_config.tenants
    assert [k.sha256 for k in tenant.keys] == [sha("tenant-own-key")]


# --- #12.17: keys only with a grant in force --------------------------------------------


def generated(result: Any) -> list[str]:
    return [f"{k.namespace}/{k.secret_name}" for k in result.generated_keys]


def test_a_quota_never_admitted_gets_no_key_secrets() -> None:
    result = render(
        [
            endpoint_model("m1"),
            policy(ceilings=CEILINGS),
            quota(limits={"requestsPerMinute": 500}, keys=APP_KEY),
        ],
        [],
    )
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.ready.reason == "NotAdmitted"
    assert result.generated_keys == ()


def test_an_admitted_quota_gets_its_key_secrets_listed() -> None:
    result = render([endpoint_model("m1"), policy(), quota(keys=APP_KEY)], [])
    assert generated(result) == ["team-a/team-a-app"]
    (key,) = result.generated_keys
    assert (key.quota_name, key.key_name) == ("team-a", "app")


def test_a_quota_keeping_its_earlier_grant_keeps_its_keys() -> None:
    over = quota(limits={"requestsPerMinute": 500}, keys=APP_KEY, granted={"requestsPerMinute": 50})
    result = render(
        [endpoint_model("m1"), policy(ceilings=CEILINGS), over],
        [secret("team-a-app", "team-a", **{"api-key": "k1"})],
    )
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.ready.reason == "PreviousGrantInForce"
    assert generated(result) == ["team-a/team-a-app"]


def test_a_quota_without_a_policy_and_no_config_in_force_gets_no_keys() -> None:
    result = render([endpoint_model("m1"), quota(keys=APP_KEY, granted={"requestsPerMinute": 5})], [])
    assert result.generated_keys == ()


def test_key_secret_body() -> None:
    key = GeneratedKey("team-a", "team-a-app", "team-a", "uid-1", "app")
    body = key.secret("llmp-value")
    assert body["kind"] == "Secret" and body["type"] == "Opaque"
    assert base64.b64decode(body["data"]["api-key"]).decode() == "llmp-value"
    meta = body["metadata"]
    assert (meta["namespace"], meta["name"]) == ("team-a", "team-a-app")
    assert meta["labels"][QUOTA_LABEL] == "team-a"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "llmplatform"
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "TenantQuota",
        "team-a",
        "uid-1",
        True,
    )
    assert "llmp-value" not in repr(key)


# --- #16.3: losing the policy keeps the earlier grant -----------------------------------


def admitted_world(**quota_spec: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Any]:
    """A quota admitted under the default policy, and the config that was then in force."""
    secrets = [secret("team-a-app", "team-a", **{"api-key": "tenant-key"})]
    resources = [
        endpoint_model("m1"),
        endpoint_model("m2", tier="premium"),
        policy(tiers={"standard": ["m1"], "premium": ["m2"]}, ceilings=CEILINGS),
        quota(limits={"requestsPerMinute": 40}, keys=APP_KEY, **quota_spec),
    ]
    first = render(resources, secrets)
    verdict = first.quota("team-a", "team-a")
    assert verdict is not None and verdict.granted is not None and verdict.in_config
    # the operator wrote status.granted along with the config
    resources[-1]["status"] = {"granted": verdict.granted}
    return resources, secrets, first


def test_default_false_on_the_only_policy_keeps_the_tenant_under_it() -> None:
    resources, secrets, first = admitted_world()
    resources[2]["spec"]["default"] = False
    result = render(resources, secrets, previous=first.gateway_config)
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None
    assert (verdict.approved.status, verdict.approved.reason) == ("False", "PolicyNotFound")
    assert "stays in force under RoutingPolicy llm-platform/default" in verdict.approved.message
    assert (verdict.ready.status, verdict.ready.reason) == ("True", "PreviousGrantInForce")
    assert verdict.in_config and verdict.granted == first.quota("team-a", "team-a").granted  # type: ignore[union-attr]
    config = result.gateway_config
    assert config.default_policy is None
    assert config.tenants == first.gateway_config.tenants
    assert [p.id for p in config.policies] == [f"{PLATFORM}/default"]
    assert generated(result) == ["team-a/team-a-app"]
    # without the config in force (llmplatform render, --manifests) the tenant is left out
    assert render(resources, secrets).gateway_config.tenants == []


def test_a_deleted_policy_is_carried_over_as_last_rendered_and_is_stable() -> None:
    resources, secrets, first = admitted_world()
    del resources[2]  # the policy
    del resources[1]  # and the premium model
    result = render(resources, secrets, previous=first.gateway_config)
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.in_config
    assert "as last rendered" in verdict.approved.message
    (kept,) = result.gateway_config.policies
    (before,) = first.gateway_config.policies
    assert kept.id == before.id and kept.default is False and before.default is True
    assert [(t.name, t.models) for t in kept.tiers] == [("standard", [f"{PLATFORM}/m1"]), ("premium", [])]
    assert kept.fallback == before.fallback and kept.data_governance == before.data_governance
    (tenant,) = result.gateway_config.tenants
    assert tenant.policy == before.id and tenant.limits == first.gateway_config.tenants[0].limits
    # a fixed point: the next pass, with this config in force, writes the same bytes
    again = render(resources, secrets, previous=result.gateway_config)
    assert again.config_json == result.config_json


def test_a_quota_naming_a_missing_policy_stays_under_the_one_it_had() -> None:
    resources, secrets, first = admitted_world()
    resources[3]["spec"]["routingPolicy"] = {"name": "typo"}
    result = render(resources, secrets, previous=first.gateway_config)
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.in_config
    assert f"RoutingPolicy {PLATFORM}/typo not found" in verdict.approved.message
    assert result.gateway_config.tenants == first.gateway_config.tenants


def test_an_invalid_policy_keeps_the_grant_too() -> None:
    resources, secrets, first = admitted_world()
    resources[2]["spec"]["tiers"] = []  # fails validation
    result = render(resources, secrets, previous=first.gateway_config)
    verdict = result.quota("team-a", "team-a")
    assert verdict is not None and verdict.in_config and "as last rendered" in verdict.approved.message
    assert result.gateway_config.tenants == first.gateway_config.tenants


def test_restoring_the_policy_ends_the_carry_over() -> None:
    resources, secrets, first = admitted_world()
    resources[2]["spec"]["default"] = False
    lost = render(resources, secrets, previous=first.gateway_config)
    resources[2]["spec"]["default"] = True
    restored = render(resources, secrets, previous=lost.gateway_config)
    verdict = restored.quota("team-a", "team-a")
    assert verdict is not None and (verdict.approved.status, verdict.ready.reason) == ("True", "Configured")
    assert restored.config_json == first.config_json


def test_a_quota_without_an_earlier_grant_is_not_kept() -> None:
    resources, secrets, first = admitted_world()
    del resources[3]["status"]
    resources[2]["spec"]["default"] = False
    result = render(resources, secrets, previous=first.gateway_config)
    assert result.gateway_config.tenants == [] and result.generated_keys == ()


def test_a_provider_credential_is_refused_even_when_the_grant_would_be_kept() -> None:
    resources, secrets, first = admitted_world()
    resources[2]["spec"]["default"] = False
    resources[3]["spec"]["apiKeys"] = [
        {"name": "app", "user": "svc", "role": "admin", "secretRef": {"name": "openai", "key": "key"}}
    ]
    resources[0] = endpoint_model("m1", secret=("openai", "key"))
    resources[3]["metadata"]["namespace"] = PLATFORM
    result = render(resources, [*secrets, provider_secret()], previous=first.gateway_config)
    assert result.gateway_config.tenants == []


# --- the config in force, read back from its ConfigMap ----------------------------------


def test_config_map_round_trip_and_a_tampered_one_is_ignored() -> None:
    _, _, first = admitted_world()
    cm = config_map(first.gateway_config, first.config_json, PLATFORM)
    assert config_from_config_map(cm) == first.gateway_config
    tampered = {
        **cm,
        "data": {
            "config.json": first.config_json.replace('"requestsPerMinute": 40,', '"requestsPerMinute": 4000,')
        },
    }
    assert tampered["data"]["config.json"] != first.config_json
    assert config_from_config_map(tampered) is None
    assert config_from_config_map(None) is None and config_from_config_map({"data": {}}) is None


def test_config_map_round_trip_compressed(monkeypatch: Any) -> None:
    from llmplatform.contract import config as gc

    _, _, first = admitted_world()
    monkeypatch.setattr(gc, "INLINE_LIMIT", 10)
    cm = config_map(first.gateway_config, first.config_json, PLATFORM)
    assert "binaryData" in cm
    assert config_from_config_map(cm) == first.gateway_config


def test_an_empty_grant_on_record_is_kept_too() -> None:
    """No limits asked and no ceilings: the grant is {} (unlimited), still a grant in force."""
    resources = [endpoint_model("m1"), policy(), quota(keys=APP_KEY, granted={})]
    secrets = [secret("team-a-app", "team-a", **{"api-key": "k"})]
    first = render(resources, secrets)
    resources[1]["spec"]["default"] = False
    lost = render(resources, secrets, previous=first.gateway_config)
    assert lost.gateway_config.tenants == first.gateway_config.tenants != []
