"""Data governance through the gateway's HTTP surface, with the official `openai` client.

What left the gateway is checked at the mock upstreams (`last_body`), so "redacted" means the
upstream never saw the value; refusals are checked as the 403 the client raises. Models:
`open` (standard, cleared for internal), `conf` (standard, confidential), `vault` (premium,
restricted, region EU); `open` comes first in the standard tier.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h

ADMIN = "llmp-gov-admin-key"
BUSINESS = "llmp-gov-business-key"
READONLY = "llmp-gov-readonly-key"
STRICT = "llmp-gov-strict-key"
STRICT_BUSINESS = "llmp-gov-strict-business-key"
GDPR = "llmp-gov-gdpr-key"
RULES = "llmp-gov-rules-key"
SCANNED = "llmp-gov-scanned-key"
HIPAA = "llmp-gov-hipaa-key"

EMAIL = "jane.doe@example.com"
SSN = "078-05-1120"
LEAK = "reach jane.doe@example.com or call ssn 078-05-1120 today"


def _policy(name: str, tiers: dict[str, list[str]], **spec: Any) -> dict[str, Any]:
    """Every model is self-hosted and allowed in-cluster plain HTTP, so encryption in transit
    (tests/gateway/test_upstream_tls.py) never decides here: these tests are about the rules."""
    governance = {"allowInClusterPlaintext": ["open", "conf", "vault"], **spec.pop("dataGovernance", {})}
    doc = h.policy(tiers, dataGovernance=governance, **spec)
    doc["metadata"]["name"] = name
    doc["spec"]["default"] = name == "default"
    return doc


def _tenant(name: str, keys: dict[str, tuple[str, str]], policy: str, **spec: Any) -> list[dict[str, Any]]:
    """keys: key name -> (value, role)."""
    docs = h.tenant(
        name,
        {k: v for k, (v, _) in keys.items()},
        ["standard", "premium"],
        routingPolicy={"name": policy, "namespace": h.PLATFORM},
        **spec,
    )
    for key in docs[-1]["spec"]["apiKeys"]:
        key["role"] = keys[key["name"]][1]
    return docs


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    mocks = {name: gateway_world.mock(name) for name in ("open", "conf", "vault")}
    tiers = {"standard": ["open", "conf"], "premium": ["vault"]}
    docs = [
        h.self_hosted("open", maxDataClassification="internal"),
        h.self_hosted("conf", maxDataClassification="confidential"),
        h.self_hosted("vault", tier="premium", maxDataClassification="restricted", region="EU"),
        _policy("default", tiers),
        _policy("strict", tiers, dataGovernance={"piiRedaction": False}),
        _policy(
            "rules",
            tiers,
            dataGovernance={
                "piiRedaction": False,
                "rules": [
                    {"classification": "restricted", "piiRedaction": True},
                    {"classification": "confidential", "allowedRegions": ["EU"]},
                ],
            },
        ),
        _policy("scanned", tiers, dataGovernance={"piiRedaction": True, "outputScanning": True}),
        *_tenant(
            "gov-a",
            {"admin": (ADMIN, "admin"), "biz": (BUSINESS, "business_user"), "ro": (READONLY, "readonly")},
            "default",
        ),
        *_tenant(
            "gov-strict",
            {"admin": (STRICT, "admin"), "biz": (STRICT_BUSINESS, "business_user")},
            "strict",
        ),
        *_tenant("gov-gdpr", {"admin": (GDPR, "admin")}, "default", compliance={"frameworks": ["gdpr"]}),
        *_tenant("gov-rules", {"admin": (RULES, "admin")}, "rules"),
        *_tenant("gov-scanned", {"admin": (SCANNED, "admin")}, "scanned"),
        *_tenant("gov-hipaa", {"admin": (HIPAA, "admin")}, "default", compliance={"frameworks": ["hipaa"]}),
    ]
    gateway_world.gateway(docs, *(arg for name, url in mocks.items() for arg in h.override(name, url)))
    return gateway_world


@pytest.fixture(autouse=True)
def _fresh_mocks(world: dict[str, Any]) -> None:
    for name in ("open", "conf", "vault"):
        h.mock_config(world[name], reply=None)


def client(world: dict[str, Any], key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=world["base"] + "/v1", api_key=key, max_retries=0)


def seen(world: dict[str, Any], name: str) -> dict[str, Any] | None:
    stats = h.mock_stats(world[name])
    return stats["last_body"] if stats["requests"] else None


def chat(world: dict[str, Any], key: str, content: Any, model: str = "standard", **kw: Any) -> Any:
    return client(world, key).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=3, **kw
    )


def test_plain_text_goes_unredacted(world: dict[str, Any]) -> None:
    raw = chat(world, ADMIN, "what is the capital of France?")
    assert raw.headers["x-llmplatform-redacted"] == "false"
    assert raw.headers["x-llmplatform-data-classification"] in ("public", "internal")
    sent = seen(world, raw.headers["x-llmplatform-model"])
    assert sent is not None and sent["messages"][0]["content"] == "what is the capital of France?"


def test_cleared_model_in_the_same_tier_is_preferred_to_redaction(world: dict[str, Any]) -> None:
    raw = chat(world, ADMIN, f"write to {EMAIL}")
    assert raw.headers["x-llmplatform-data-classification"] == "confidential"
    assert raw.headers["x-llmplatform-model"] == "conf"
    assert raw.headers["x-llmplatform-redacted"] == "false"
    assert seen(world, "conf")["messages"][0]["content"] == f"write to {EMAIL}"
    assert seen(world, "open") is None


def test_a_named_model_below_the_class_gets_the_redacted_copy(world: dict[str, Any]) -> None:
    raw = chat(world, ADMIN, f"write to {EMAIL}", model="open")
    assert raw.headers["x-llmplatform-model"] == "open"
    assert raw.headers["x-llmplatform-redacted"] == "true"
    assert seen(world, "open")["messages"][0]["content"] == "write to [EMAIL_REDACTED]"


def test_every_text_part_is_scanned_and_redacted(world: dict[str, Any]) -> None:
    messages: list[Any] = [
        {"role": "system", "content": f"the customer's SSN is {SSN}"},
        {"role": "user", "content": [{"type": "text", "text": f"mail {EMAIL}"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"ssn": SSN})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": f"owner: {EMAIL}"},
    ]
    raw = client(world, ADMIN).chat.completions.with_raw_response.create(
        model="standard", messages=messages, max_tokens=3
    )
    # restricted: no standard model is cleared, so the first one gets the redacted copy
    assert raw.headers["x-llmplatform-data-classification"] == "restricted"
    assert raw.headers["x-llmplatform-redacted"] == "true"
    sent = json.dumps(seen(world, raw.headers["x-llmplatform-model"]))
    assert SSN not in sent and EMAIL not in sent
    assert sent.count("[SSN_REDACTED]") == 2 and sent.count("[EMAIL_REDACTED]") == 2
    # the request the client sent was not modified in place for other candidates
    assert messages[0]["content"].endswith(SSN)


def test_completions_prompt_and_embeddings_input_are_redacted(world: dict[str, Any]) -> None:
    c = client(world, ADMIN)
    c.completions.create(model="open", prompt=[f"to {EMAIL}", "fine"], max_tokens=2)
    assert seen(world, "open")["prompt"] == ["to [EMAIL_REDACTED]", "fine"]
    c.embeddings.create(model="open", input=f"ssn {SSN}")
    assert seen(world, "open")["input"] == "ssn [SSN_REDACTED]"


def test_medical_data_counts_only_for_hipaa_tenants(world: dict[str, Any]) -> None:
    note = "MRN: 12345678 diagnosed E11.9"
    raw = chat(world, HIPAA, note, model="open")
    assert raw.headers["x-llmplatform-data-classification"] == "restricted"
    assert seen(world, "open")["messages"][0]["content"] == "MRN: [MRN_REDACTED] diagnosed [ICD10_REDACTED]"
    raw = chat(world, ADMIN, note, model="open")  # not under hipaa: not medical data
    assert raw.headers["x-llmplatform-redacted"] == "false"
    assert seen(world, "open")["messages"][0]["content"] == note


def test_a_class_redaction_cannot_lower_skips_uncleared_models(world: dict[str, Any]) -> None:
    # "confidential" is a keyword, not a finding: redaction cannot lower it, so the named
    # internal-only model is skipped and the next model of its tier serves
    raw = chat(world, ADMIN, "this memo is confidential", model="open")
    assert raw.headers["x-llmplatform-data-classification"] == "confidential"
    assert raw.headers["x-llmplatform-model"] == "conf"
    assert raw.headers["x-llmplatform-redacted"] == "false"
    assert seen(world, "open") is None


def test_without_redaction_an_uncleared_class_is_refused(world: dict[str, Any]) -> None:
    with pytest.raises(openai.PermissionDeniedError) as err:
        chat(world, STRICT, f"ssn {SSN}")
    body = err.value.body
    assert isinstance(body, dict)
    assert body["code"] == "data_classification"
    assert "restricted" in body["message"] and "no model in the allowed tiers is cleared" in body["message"]
    assert err.value.response.headers["x-llmplatform-data-classification"] == "restricted"
    assert seen(world, "open") is None and seen(world, "conf") is None
    # a tier with a cleared model serves it unredacted
    raw = chat(world, STRICT, f"ssn {SSN}", model="premium")
    assert raw.headers["x-llmplatform-model"] == "vault"
    assert seen(world, "vault")["messages"][0]["content"] == f"ssn {SSN}"


def test_role_caps_what_leaves_the_gateway(world: dict[str, Any]) -> None:
    # business_user may send up to internal: even the confidential-cleared model gets the copy
    raw = chat(world, BUSINESS, f"write to {EMAIL}", model="conf")
    assert raw.headers["x-llmplatform-redacted"] == "true"
    assert seen(world, "conf")["messages"][0]["content"] == "write to [EMAIL_REDACTED]"
    # the admin key of the same tenant sends it as is
    chat(world, ADMIN, f"write to {EMAIL}", model="conf")
    assert seen(world, "conf")["messages"][0]["content"] == f"write to {EMAIL}"
    # without redaction the business user is refused, and told it is the role
    with pytest.raises(openai.PermissionDeniedError) as err:
        chat(world, STRICT_BUSINESS, f"write to {EMAIL}", model="conf")
    assert isinstance(err.value.body, dict)
    assert "role 'business_user' may send data up to internal" in err.value.body["message"]


def test_readonly_keys_may_list_models_but_not_create(world: dict[str, Any]) -> None:
    c = client(world, READONLY)
    assert sorted(m.id for m in c.models.list()) == ["conf", "open", "vault"]
    with pytest.raises(openai.PermissionDeniedError) as err:
        chat(world, READONLY, "hello")
    assert isinstance(err.value.body, dict) and err.value.body["code"] == "role_not_allowed"
    with pytest.raises(openai.PermissionDeniedError):
        c.embeddings.create(model="open", input="hello")


def test_gdpr_tenants_only_reach_eu_models(world: dict[str, Any]) -> None:
    with pytest.raises(openai.PermissionDeniedError) as err:
        chat(world, GDPR, "hello")
    assert isinstance(err.value.body, dict) and err.value.body["code"] == "data_residency"
    assert "EU/EEA" in err.value.body["message"]
    raw = chat(world, GDPR, "hello", model="premium")
    assert raw.headers["x-llmplatform-model"] == "vault"


def test_per_classification_rules(world: dict[str, Any]) -> None:
    # restricted: the rule turns redaction on although the policy has it off
    raw = chat(world, RULES, f"ssn {SSN}")
    assert raw.headers["x-llmplatform-redacted"] == "true"
    assert seen(world, raw.headers["x-llmplatform-model"])["messages"][0]["content"] == "ssn [SSN_REDACTED]"
    # confidential: only EU models, redaction off -> the standard tier has none
    with pytest.raises(openai.PermissionDeniedError) as err:
        chat(world, RULES, f"write to {EMAIL}")
    assert isinstance(err.value.body, dict) and "confidential" in err.value.body["message"]
    assert chat(world, RULES, f"write to {EMAIL}", model="premium").headers["x-llmplatform-model"] == "vault"
    # public data is not restricted by the confidential rule
    assert chat(world, RULES, "hello").headers["x-llmplatform-model"] in ("open", "conf")


def test_output_scanning_redacts_json_and_streams(world: dict[str, Any]) -> None:
    for name in ("open", "conf"):
        # 5-character chunks split the e-mail address and the SSN across SSE events
        h.mock_config(world[name], reply=LEAK, reply_chunk_chars=5)
    done = chat(world, SCANNED, "hello").parse()
    text = done.choices[0].message.content
    assert EMAIL not in text and SSN not in text
    assert "[EMAIL_REDACTED]" in text and "[SSN_REDACTED]" in text
    stream = client(world, SCANNED).chat.completions.create(
        model="standard",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage is not None
    pieces = client(world, SCANNED).completions.create(model="standard", prompt="hello", stream=True)
    assert "".join(p.choices[0].text for p in pieces if p.choices) == text
    # the same reply without outputScanning reaches the client as the model wrote it
    assert chat(world, ADMIN, "hello").parse().choices[0].message.content == LEAK


def test_governance_metrics(world: dict[str, Any]) -> None:
    before = h.metric(world["base"], "llmplatform_pii_findings_total", tenant="gov-a/gov-a", type="email")
    denied = h.metric(world["base"], "llmplatform_governance_denied_total", reason="residency")
    chat(world, ADMIN, f"{EMAIL} and {EMAIL}")
    with pytest.raises(openai.PermissionDeniedError):
        chat(world, GDPR, "hello")
    after = h.metric(world["base"], "llmplatform_pii_findings_total", tenant="gov-a/gov-a", type="email")
    assert after - before == 2
    assert h.metric(world["base"], "llmplatform_governance_denied_total", reason="residency") == denied + 1


def test_bad_governance_input_is_a_clear_error(world: dict[str, Any], tmp_path: Path) -> None:
    # non-text parts (images, token arrays) pass; a non-list messages is a 400, not a crash
    r = httpx.post(
        world["base"] + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"model": "open", "messages": [{"role": "user", "content": [{"type": "image_url"}, 7]}]},
    )
    assert r.status_code == 200
    r = httpx.post(
        world["base"] + "/v1/completions",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={"model": "open", "prompt": [1, 2, 3], "max_tokens": 1},
    )
    assert r.status_code == 200
