"""Encryption in transit and retention as the rendering core and the compiled config see them:
which models count as TLS, which plain ones a policy may allow (only self-hosted ones), CA
bundle Secrets, retention days by framework, and the cache TTL capped by retention."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmplatform.api.llmmodel import LLMModel
from llmplatform.api.routingpolicy import RoutingPolicy
from llmplatform.contract.names import RETENTION_DAYS
from llmplatform.gateway.compiled import compile_config
from llmplatform.gateway.source import ConfigFile
from llmplatform.render import render
from llmplatform_testing.certs import CA
from render_factories import PLATFORM, endpoint_model, policy, quota, secret, serving_model

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
REPO = Path(__file__).resolve().parents[2]


def with_ca(name: str, secret_name: str = "ca", key: str = "ca.pem") -> dict:
    doc = endpoint_model(name)
    doc["spec"]["endpoint"]["caBundleSecretRef"] = {"name": secret_name, "key": key}
    return doc


def plain(name: str) -> dict:
    doc = endpoint_model(name)
    doc["spec"]["endpoint"]["url"] = f"http://{name}.internal:8000/v1"
    return doc


def test_tls_comes_from_the_declared_url_and_the_ca_bundle_is_a_reference() -> None:
    resources = [
        with_ca("m1"),
        plain("m2"),
        serving_model("m3"),
        policy(tiers={"standard": ["m1", "m2"], "efficient": ["m3"]}),
    ]
    result = render(resources, [secret("ca", PLATFORM, **{"ca.pem": CA_PEM})])
    models = {m.name: m for m in result.gateway_config.models}
    assert (models["m1"].tls, models["m2"].tls, models["m3"].tls) == (True, False, False)
    ref = models["m1"].ca_bundle_secret_ref
    assert ref is not None and (ref.namespace, ref.name, ref.key) == (PLATFORM, "ca", "ca.pem")
    assert CA_PEM not in result.config_json  # a reference, never the bundle itself


@pytest.mark.parametrize(
    ("secrets", "reason"),
    [
        ([], "SecretNotFound"),
        ([secret("ca", PLATFORM, other=CA_PEM)], "SecretKeyNotFound"),
        ([secret("ca", PLATFORM, **{"ca.pem": "not a certificate"})], "InvalidCABundle"),
    ],
)
def test_an_unusable_ca_bundle_keeps_the_model_out_and_says_why(secrets: list, reason: str) -> None:
    result = render([with_ca("m1"), policy(tiers={"standard": ["m1"]})], secrets)
    verdict = result.model(PLATFORM, "m1")
    assert verdict is not None and not verdict.in_config
    assert verdict.ready.reason == reason and "CA bundle" in verdict.ready.message
    assert result.gateway_config.models == []


def test_a_rotated_ca_bundle_is_read_again_without_a_config_change(tmp_path: Path) -> None:
    """The gateway reads a CA bundle from its secrets folder through the same resolver as
    provider keys, so the kubelet's in-place update of the Secret changes the polled
    fingerprint and the next load builds a context trusting the new CA (no restart)."""
    old, new = CA("old upstream CA"), CA("new upstream CA")
    result = render(
        [with_ca("m1"), policy(tiers={"standard": ["m1"]})], [secret("ca", PLATFORM, **{"ca.pem": CA_PEM})]
    )
    (tmp_path / "config.json").write_text(result.config_json)
    bundle = tmp_path / "secrets" / PLATFORM / "ca" / "ca.pem"
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(old.cert_pem)
    source = ConfigFile(str(tmp_path / "config.json"), str(tmp_path / "secrets"))

    def trusted() -> list[str]:
        context = compile_config(*source.load()).models[result.gateway_config.models[0].id].upstream_tls.ssl
        assert not isinstance(context, bool)
        return [str(c["subject"]) for c in context.get_ca_certs()]

    assert "old upstream CA" in trusted()[0]
    before = source.fingerprint()
    bundle.write_bytes(new.cert_pem)
    assert source.fingerprint() != before
    assert "new upstream CA" in trusted()[0]


def test_a_ca_bundle_needs_an_https_url() -> None:
    doc = with_ca("m1")
    doc["spec"]["endpoint"]["url"] = "http://m1.internal/v1"
    with pytest.raises(ValidationError, match="caBundleSecretRef needs an https:// url"):
        LLMModel.model_validate(doc)


def test_only_self_hosted_models_get_the_in_cluster_plaintext_allowance() -> None:
    resources = [
        plain("m2"),
        serving_model("m3"),
        policy(
            tiers={"standard": ["m2"], "efficient": ["m3"]},
            dataGovernance={"allowInClusterPlaintext": ["m2", "m3"]},
        ),
    ]
    result = render(resources, [])
    (entry,) = result.gateway_config.policies
    assert entry.data_governance.in_cluster_plaintext == [f"{PLATFORM}/m3"]
    verdict = result.policy(PLATFORM, "default")
    assert verdict is not None and verdict.ready.reason == "PlaintextNotProtected"
    assert "m2" in verdict.ready.message and "m3" not in verdict.ready.message.split(":")[1]


def test_the_allowance_must_name_a_model_of_the_policy() -> None:
    doc = policy(tiers={"standard": ["m1"]}, dataGovernance={"allowInClusterPlaintext": ["m9"]})
    with pytest.raises(ValidationError, match="allowInClusterPlaintext entry must be a model named"):
        RoutingPolicy.model_validate(doc)


def test_retention_out_of_range_is_refused_naming_the_field() -> None:
    doc = policy(retention={"frameworks": [{"framework": "gdpr", "days": 0}]})
    with pytest.raises(ValidationError, match=r"retention\.frameworks\.0\.days"):
        RoutingPolicy.model_validate(doc)


def _compiled(retention: dict | None, ttl: int = 604800):
    spec = {"cache": {"enabled": True, "ttlSeconds": ttl}}
    if retention is not None:
        spec["retention"] = retention
    keys = [{"name": "k", "user": "u", "role": "admin", "secretRef": {"name": "key", "key": "v"}}]
    resources = [endpoint_model("m1"), policy(tiers={"standard": ["m1"]}, **spec)]
    secrets = []
    for team, frameworks in {
        "none": [],
        "gdpr": ["gdpr"],
        "both": ["gdpr", "hipaa"],
        "pci": ["pci_dss"],
    }.items():
        resources.append(quota(team, namespace=team, keys=keys, compliance={"frameworks": frameworks}))
        secrets.append(secret("key", team, v=f"key-of-{team}"))
    config = render(resources, secrets).gateway_config
    return compile_config(config, lambda ns, name, key: None)


def test_retention_by_framework_defaults_and_overrides() -> None:
    compiled = _compiled(None)
    days = {t.name: t.retention_days for t in compiled.tenants.values()}
    assert days == {"none": 90, "gdpr": RETENTION_DAYS["gdpr"], "both": 2557, "pci": 365}
    assert compiled.default_retention_days == 90
    compiled = _compiled({"defaultDays": 30, "frameworks": [{"framework": "hipaa", "days": 3650}]})
    days = {t.name: t.retention_days for t in compiled.tenants.values()}
    assert days == {"none": 30, "gdpr": 90, "both": 3650, "pci": 365}
    assert compiled.default_retention_days == 30


def test_cached_answers_never_outlive_the_retention() -> None:
    compiled = _compiled({"defaultDays": 1, "frameworks": [{"framework": "gdpr", "days": 2}]})
    ttl = {t.name: t.cache_ttl for t in compiled.tenants.values()}
    assert ttl == {"none": 86400, "gdpr": 2 * 86400, "both": 604800, "pci": 604800}
    assert {t.cache_ttl for t in _compiled(None, ttl=300).tenants.values()} == {300}


def test_transit_settings_reach_the_compiled_tenants() -> None:
    compiled = _compiled(None)
    regulated = {t.name: t.governance.encrypted_transit for t in compiled.tenants.values()}
    assert regulated == {"none": False, "gdpr": False, "both": True, "pci": True}


def test_no_gateway_code_turns_certificate_verification_off() -> None:
    """Every ssl= the gateway passes comes from upstreamtls (True or a verifying context), and
    nothing in it names the ways to disable verification."""
    forbidden = ("CERT_NONE", "check_hostname = False", "verify_ssl", "_create_unverified_context")
    for path in sorted((REPO / "gateway/llmplatform/gateway").rglob("*.py")):
        text = path.read_text()
        for word in forbidden:
            assert word not in text, f"{path.name} mentions {word}"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.keyword) and node.arg == "ssl":
                assert not (isinstance(node.value, ast.Constant) and node.value.value is False), path.name
