"""The gateway config and its ConfigMap: versioned, hashed, canonical, and free of secrets."""

from __future__ import annotations

import hashlib
import json

import pytest

from llmplatform.render import (
    CONFIG_KEY,
    CONFIG_MAP_NAME,
    SCHEMA_VERSION,
    UnsupportedSchemaVersion,
    hash_api_key,
    load_config,
    render,
)
from render_factories import PLATFORM, endpoint_model, policy, quota, secret, serving_model

PROVIDER_KEY = "sk-provider-SECRET-value-123"
TENANT_KEY = "tenant-key-SECRET-456"


def full_input() -> tuple[list[dict], list[dict]]:
    resources = [
        endpoint_model("m1", secret=("provider", "api-key"), provider="anthropic"),
        serving_model("m2"),
        policy(tiers={"standard": ["m1"], "efficient": ["m2"]}, ceilings={"requestsPerMinute": 100}),
        quota(limits={"requestsPerMinute": 50}, keys=[{"name": "alice", "user": "alice", "role": "admin"}]),
    ]
    secrets = [
        secret("provider", PLATFORM, **{"api-key": PROVIDER_KEY}),
        secret("team-a-alice", "team-a", **{"api-key": TENANT_KEY}),
    ]
    return resources, secrets


def test_config_map_name_namespace_and_single_key() -> None:
    result = render(*full_input(), platform_namespace="platform")
    cm = result.config_map
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == CONFIG_MAP_NAME == "llmplatform-gateway-config"
    assert cm["metadata"]["namespace"] == "platform"
    assert list(cm["data"]) == [CONFIG_KEY] == ["config.json"]
    assert cm["metadata"]["annotations"]["llmplatform.io/config-hash"] == result.gateway_config.content_hash
    assert "ownerReferences" not in cm["metadata"]


def test_config_carries_key_hashes_never_keys_or_credentials() -> None:
    result = render(*full_input())
    text = result.config_json
    assert TENANT_KEY not in text and PROVIDER_KEY not in text
    everything = json.dumps(result.objects) + repr(result)
    assert TENANT_KEY not in everything and PROVIDER_KEY not in everything
    (tenant,) = result.gateway_config.tenants
    (key,) = tenant.keys
    assert key.sha256 == hashlib.sha256(TENANT_KEY.encode()).hexdigest()
    assert (key.name, key.user, key.role) == ("alice", "alice", "admin")
    m1 = next(m for m in result.gateway_config.models if m.name == "m1")
    assert m1.api_key_secret_ref is not None
    assert m1.api_key_secret_ref.model_dump() == {"namespace": PLATFORM, "name": "provider", "key": "api-key"}


def test_schema_version_and_content_hash() -> None:
    result = render(*full_input())
    body = json.loads(result.config_json)
    assert body["schemaVersion"] == SCHEMA_VERSION == 1
    rest = {k: v for k, v in body.items() if k != "contentHash"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert body["contentHash"] == hashlib.sha256(canonical.encode()).hexdigest()


def test_content_hash_changes_with_content() -> None:
    resources, secrets = full_input()
    before = render(resources, secrets).gateway_config.content_hash
    resources[0]["spec"]["contextWindow"] = 4096
    assert render(resources, secrets).gateway_config.content_hash != before


def test_config_contents() -> None:
    config = render(*full_input()).gateway_config
    assert config.default_policy == f"{PLATFORM}/default"
    assert [m.id for m in config.models] == [f"{PLATFORM}/m1", f"{PLATFORM}/m2"]
    m1, m2 = config.models
    assert (m1.tier, m1.provider, m1.upstream_model, m1.url) == (
        "standard",
        "anthropic",
        "m1",
        "https://m1.example.com/v1",
    )
    assert m2.self_hosted and m2.url == f"http://llmm-m2.{PLATFORM}.svc.cluster.local:8000/v1"
    assert m1.capabilities == ["chat", "completions"] and m1.max_data_classification == "internal"
    (p,) = config.policies
    assert p.default and p.default_tier == "standard"
    assert [(t.name, t.models) for t in p.tiers] == [
        ("standard", [f"{PLATFORM}/m1"]),
        ("efficient", [f"{PLATFORM}/m2"]),
    ]
    assert p.scoring.model_dump() == {"availability": 0.4, "cost": 0.3, "latency": 0.2, "priority": 0.1}
    assert p.fallback.retry_on == [429, 500, 502, 503, 504, "timeout", "connect"]
    (t,) = config.tenants
    assert (t.organization, t.policy, t.allowed_tiers) == (
        "team-a",
        f"{PLATFORM}/default",
        ["standard", "efficient"],
    )
    assert t.limits.requests_per_minute == 50


def test_round_trip_through_load_config() -> None:
    result = render(*full_input())
    loaded = load_config(result.config_json)
    assert loaded == result.gateway_config


def test_load_config_refuses_unknown_schema_versions() -> None:
    body = json.loads(render(*full_input()).config_json)
    body["schemaVersion"] = 2
    with pytest.raises(UnsupportedSchemaVersion):
        load_config(json.dumps(body))


def test_load_config_detects_edits() -> None:
    body = json.loads(render(*full_input()).config_json)
    body["tenants"][0]["limits"]["requestsPerMinute"] = 10**9
    with pytest.raises(ValueError, match="contentHash"):
        load_config(json.dumps(body))


def test_load_config_tolerates_fields_from_a_newer_operator() -> None:
    body = json.loads(render(*full_input()).config_json)
    body["newThing"] = {"x": 1}
    rest = {k: v for k, v in body.items() if k != "contentHash"}
    body["contentHash"] = hashlib.sha256(
        json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    assert load_config(json.dumps(body)).schema_version == 1


def test_unchanged_input_gives_identical_bytes() -> None:
    first, second = render(*full_input()), render(*full_input())
    assert first.config_json == second.config_json
    assert first.objects == second.objects


def test_hash_api_key_strips_surrounding_whitespace() -> None:
    digest = hashlib.sha256(b"abc").hexdigest()
    assert hash_api_key("abc") == hash_api_key(b"abc\n") == hash_api_key(" abc ") == digest


def test_large_config_is_stored_gzipped_under_the_configmap_limit(tmp_path) -> None:
    """Thousands of tenants exceed a ConfigMap's 1 MiB: the config then goes to binaryData
    `config.json.gz`, deterministically, and loads back (bytes, file or mounted folder)."""
    import base64

    from llmplatform.render import CONFIG_GZ_KEY, read_config_file

    resources = [endpoint_model("m1"), policy(tiers={"standard": ["m1"]})]
    secrets = []
    for i in range(1500):
        ns = f"t{i % 40}"
        keys = [{"name": "k", "user": f"user-{i}", "role": "admin"}]
        resources.append(quota(f"q{i}", namespace=ns, limits={"requestsPerMinute": 10}, keys=keys))
        secrets.append(secret(f"q{i}-k", ns, **{"api-key": f"key-{i}"}))
    first, again = render(resources, secrets), render(list(reversed(resources)), secrets)
    cm = first.config_map
    assert len(first.config_json.encode()) > 512 * 1024
    assert "data" not in cm and list(cm["binaryData"]) == [CONFIG_GZ_KEY]
    assert cm == again.config_map
    blob = base64.b64decode(cm["binaryData"][CONFIG_GZ_KEY])
    assert len(blob) < 1024 * 1024
    assert load_config(blob) == first.gateway_config
    (tmp_path / CONFIG_GZ_KEY).write_bytes(blob)
    assert read_config_file(tmp_path) == first.gateway_config
    assert read_config_file(tmp_path / CONFIG_GZ_KEY).content_hash == first.gateway_config.content_hash
