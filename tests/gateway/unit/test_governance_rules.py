"""The governance rules as pure functions: residency, per-candidate decisions and ordering,
and the walk over a request's text parts. The HTTP behaviour is in
tests/gateway/test_governance_http.py."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmplatform.contract.config import ClassificationRule, DataGovernance
from llmplatform.gateway import clearance as cl
from llmplatform.gateway import governance as gv
from llmplatform.gateway import pii
from llmplatform.gateway.compiled import Model
from llmplatform.gateway.router import Candidate

EMAIL = "jane.doe@example.com"
SSN = "078-05-1120"


@pytest.mark.parametrize(
    ("region", "eu"),
    [
        ("EU", True),
        ("eea", True),
        ("de", True),
        ("DE-fra-1", True),
        ("no", True),
        ("eu-west-1", True),
        ("europe-west4", True),
        ("eu-west-2", False),  # London
        ("europe-west6", False),  # Zurich
        ("ch", False),
        ("us-east-1", False),
        ("", False),
        (None, False),
    ],
)
def test_is_eu(region: str | None, eu: bool) -> None:
    assert cl.is_eu(region) is eu


def test_region_matches() -> None:
    assert cl.region_matches("eu-west-1", "eu")
    assert cl.region_matches("US-East-1", "us-east-1")
    assert cl.region_matches("us-east-1", "us")
    assert not cl.region_matches("useast", "us")
    assert not cl.region_matches(None, "us")


def model(name: str, tier: str, cls: str, region: str | None = None) -> Model:
    return Model(
        id=f"p/{name}",
        name=name,
        tier=tier,
        provider="openai",
        upstream_model=name,
        urls={},
        api_key=None,
        capabilities=frozenset({"chat"}),
        context_window=8192,
        max_output_tokens=None,
        input_price=0,
        output_price=0,
        prior_latency_ms=1,
        prior_availability=1,
        max_class=cl.RANK[cls],
        region=region,
    )


OPEN = Candidate(model("open", "standard", "internal"), "standard")
CONF = Candidate(model("conf", "standard", "confidential"), "standard")
VAULT = Candidate(model("vault", "premium", "restricted", "EU"), "premium")
NOBODY = cl.TenantGovernance(hipaa=False, gdpr=False, region=None)


def gov(redaction: bool = True, *rules: ClassificationRule) -> cl.PolicyGovernance:
    return cl.compile_policy(DataGovernance(pii_redaction=redaction, rules=list(rules)))


def chat(text: str) -> dict[str, Any]:
    return {"model": "standard", "messages": [{"role": "user", "content": text}]}


def names(routes: list[gv.Route]) -> list[tuple[str, bool]]:
    return [(r.cand.model.name, r.redacted) for r in routes]


def test_unredacted_in_the_same_tier_first_then_redacted_then_other_tiers() -> None:
    found = gv.scan(chat(f"mail {EMAIL}"), "chat", False)
    assert found.classification == "confidential" and found.findings == {"email": 1}
    routes = gv.route(found, [OPEN, CONF, VAULT], gov(), NOBODY, "admin", named=False)
    assert names(routes) == [("conf", False), ("open", True), ("vault", False)]
    # a named model stays first even when it needs the redacted copy
    routes = gv.route(found, [OPEN, CONF, VAULT], gov(), NOBODY, "admin", named=True)
    assert names(routes)[0] == ("open", True)


def test_without_redaction_uncleared_models_are_skipped_and_none_left_is_a_403() -> None:
    found = gv.scan(chat(f"ssn {SSN}"), "chat", False)
    assert found.classification == "restricted"
    assert names(gv.route(found, [OPEN, CONF, VAULT], gov(False), NOBODY, "admin", False)) == [
        ("vault", False)
    ]
    with pytest.raises(gv.GovernanceDenied) as err:
        gv.route(found, [OPEN, CONF], gov(False), NOBODY, "admin", False)
    assert err.value.status == 403 and err.value.code == "data_classification"
    assert err.value.reason == "classification"
    assert "restricted" in err.value.message and "ssn x1" in err.value.message


def test_role_ceiling_acts_like_a_clearance() -> None:
    found = gv.scan(chat(f"mail {EMAIL}"), "chat", False)
    assert names(gv.route(found, [CONF], gov(), NOBODY, "business_user", False)) == [("conf", True)]
    assert names(gv.route(found, [CONF], gov(), NOBODY, "data_scientist", False)) == [("conf", False)]
    with pytest.raises(gv.GovernanceDenied) as err:
        gv.route(found, [CONF, VAULT], gov(False), NOBODY, "business_user", False)
    assert err.value.reason == "role" and "business_user" in err.value.message
    with pytest.raises(gv.GatewayError):
        gv.check_role("readonly")


def test_rules_restrict_tiers_and_regions_and_override_redaction() -> None:
    found = gv.scan(chat(f"mail {EMAIL}"), "chat", False)
    only_premium = ClassificationRule(
        classification="confidential", allowed_tiers=["premium"], allowed_regions=None, pii_redaction=None
    )
    # conf is cleared but the rule keeps confidential data in premium; open gets the (public) copy
    assert names(gv.route(found, [OPEN, CONF, VAULT], gov(True, only_premium), NOBODY, "admin", False)) == [
        ("open", True),
        ("conf", True),
        ("vault", False),
    ]
    eu_only = ClassificationRule(
        classification="confidential", allowed_tiers=None, allowed_regions=["EU"], pii_redaction=False
    )
    assert names(gv.route(found, [OPEN, CONF, VAULT], gov(True, eu_only), NOBODY, "admin", False)) == [
        ("vault", False)
    ]


def test_gdpr_and_tenant_region() -> None:
    found = gv.scan(chat("hello"), "chat", False)
    gdpr = cl.TenantGovernance(hipaa=False, gdpr=True, region=None)
    assert names(gv.route(found, [OPEN, VAULT], gov(), gdpr, "admin", False)) == [("vault", False)]
    with pytest.raises(gv.GovernanceDenied) as err:
        gv.route(found, [OPEN, CONF], gov(), gdpr, "admin", False)
    assert err.value.code == "data_residency" and err.value.reason == "residency"
    us = cl.TenantGovernance(hipaa=False, gdpr=False, region="us")
    with pytest.raises(gv.GovernanceDenied):
        gv.route(found, [VAULT], gov(), us, "admin", False)


def test_every_string_is_visited_and_the_original_is_untouched() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "s"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "p1"}, {"type": "image_url", "image_url": {"url": "u"}}],
            },
            {
                "role": "assistant",
                "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": '{"a": "a1"}'}}],
                "function_call": {"name": "g", "arguments": "a2"},
            },
            {"role": "tool", "content": "t"},
        ],
    }
    found = gv.scan(body, "chat", False)
    pieces = found.forwarded.pieces
    assert [p.text for p in pieces if p.joined] == ["s", "p1", "t"]  # the conversation's text
    assert {"u", "f", "a1", "g", "a2", "a"} <= {p.text for p in pieces}  # "a": a key outside the API
    upper = found.forwarded.redacted(lambda p: p.text.upper())  # only pieces with findings change
    assert upper == body
    for p in found.forwarded.pieces:
        p.spans = [pii.Finding("email", 0, len(p.text))] if p.text else []
    red = found.forwarded.redacted(lambda p: p.text.upper())
    assert red["model"] == "m" and red["messages"][1]["content"][0]["text"] == "P1"  # API keys stay
    assert red["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"A": "A1"}'
    assert body["messages"][1]["content"][0]["text"] == "p1"
    prompt = gv.scan({"prompt": ["x", [1, 2]]}, "completions", False).forwarded.pieces
    assert [p.text for p in prompt if p.joined] == ["x"]


def test_output_redaction_of_a_json_completion_and_a_split_stream() -> None:
    raw = b'{"choices":[{"index":0,"message":{"role":"assistant","content":"mail ' + EMAIL.encode() + b'"}}]}'
    out, found = gv.redact_response(raw, "chat", False)
    assert EMAIL.encode() not in out and b"[EMAIL_REDACTED]" in out and found == {"email": 1}
    scanner = gv.StreamScanner("chat", False)
    text = f"write to {EMAIL} today"
    sent = []
    for i in range(0, len(text), 3):
        chunk = scanner.chunk({"choices": [{"index": 0, "delta": {"content": text[i : i + 3]}}]})
        sent.append(chunk["choices"][0]["delta"]["content"])
    last = scanner.chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    sent.append(last["choices"][0]["delta"].get("content", ""))
    assert "".join(sent) == "write to [EMAIL_REDACTED] today"
    assert scanner.finish() is None and scanner.findings == {"email": 1}


def test_redaction_keeps_the_class_of_parts_it_cannot_change() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "this memo is confidential"},
            {"role": "user", "content": f"mail {EMAIL}"},
        ]
    }
    found = gv.scan(body, "chat", False)
    assert found.classification == "confidential"
    copy, rank = found.redacted()
    assert cl.CLASSES[rank] == "confidential"
    assert copy["messages"][1]["content"] == "mail [EMAIL_REDACTED]"
    alone = gv.scan({"messages": [{"role": "user", "content": f"mail {EMAIL}"}]}, "chat", False)
    assert cl.CLASSES[alone.redacted()[1]] == "public"


def test_regulated_requests_reach_plain_models_only_where_the_policy_allows() -> None:
    plain = Candidate(dataclasses.replace(VAULT.model, id="p/plain", name="plain", tls=False), "premium")
    secure = VAULT  # tls (the default)
    allowed = cl.PolicyGovernance(gov().rules, False, plaintext_ok=frozenset({"p/plain"}))
    strict_plain = cl.PolicyGovernance(gov(False).rules, False)
    pci = cl.TenantGovernance(hipaa=False, gdpr=False, region=None, encrypted_transit=True)
    hello = gv.scan(chat("hello"), "chat", False)
    # a tenant under pci_dss/hipaa: the plain model is skipped, the TLS one stays
    assert names(gv.route(hello, [plain, secure], gov(), pci, "admin", False)) == [("vault", False)]
    assert names(gv.route(hello, [plain, secure], allowed, pci, "admin", False)) == [
        ("plain", False),
        ("vault", False),
    ]
    with pytest.raises(gv.GovernanceDenied) as err:
        gv.route(hello, [plain], gov(), pci, "admin", False)
    assert err.value.code == "encryption_required" and "plain" in str(err.value.message)
    # restricted data: not over plain HTTP, but its redacted copy (no longer restricted) may go
    ssn = gv.scan(chat("ssn 078-05-1120"), "chat", False)
    assert ssn.classification == "restricted"
    assert names(gv.route(ssn, [plain, secure], gov(), NOBODY, "admin", False)) == [
        ("vault", False),
        ("plain", True),
    ]
    with pytest.raises(gv.GovernanceDenied) as err:
        gv.route(ssn, [plain], strict_plain, NOBODY, "admin", False)
    assert err.value.code == "encryption_required" and "classified restricted" in str(err.value.message)
    assert names(gv.route(ssn, [plain], allowed, NOBODY, "admin", False)) == [("plain", False)]
