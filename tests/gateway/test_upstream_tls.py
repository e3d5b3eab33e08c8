"""Encryption in transit through the gateway's HTTP surface, with the official `openai` client.

Upstreams: `plain` and `plain-b` (http:// endpoints), `secure` (the same test server over
HTTPS, with a certificate from a CA made here and given to the model as `caBundleSecretRef`),
`untrusted` (that HTTPS server without the CA bundle: the system's CAs do not know it) and
`local` (a self-hosted model: plain HTTP to its cluster Service, here overridden to a local
test server). Tenants: `pci` (pci_dss) and `open` (no framework, redaction off so restricted
data stays restricted) under the default policy, which allows `local` (and names `plain-b`,
an endpoint model, which does not qualify) in-cluster; `pci-strict` under a policy that
allows nothing plain. Every plain upstream's request count shows what really left.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmplatform_testing import gateway as h
from llmplatform_testing.certs import CA, client_context
from llmplatform_testing.procs import Proc, cli, free_port

PCI = "llmp-tls-pci-key"
OPEN = "llmp-tls-open-key"
STRICT = "llmp-tls-strict-key"
SSN = "078-05-1120"
PLAIN_MOCKS = ("plain", "plain-b", "local")


def start_tls_mock(tmp: Path, ca: CA) -> tuple[Proc, str]:
    cert, key = ca.issue("127.0.0.1", sans=("127.0.0.1",)).write(tmp / "tls-mock", "server")
    port = free_port()
    proc = Proc(
        cli("mock-upstream", "--port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)),
        tmp / "mock-tls.log",
    )
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", verify=client_context(ca), timeout=1).is_success:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"TLS mock not ready:\n{proc.log_tail()}")
        time.sleep(0.2)


def _policy(name: str, tiers: dict[str, list[str]], **governance: Any) -> dict[str, Any]:
    doc = h.policy(tiers, dataGovernance={"piiRedaction": False, **governance})
    doc["metadata"]["name"] = name
    doc["spec"]["default"] = name == "default"
    doc["spec"]["fallback"]["acrossTiers"] = []
    return doc


@pytest.fixture(scope="module")
def world(gateway_world: h.World) -> h.World:
    ca = CA("llmplatform test CA")
    proc, tls_url = start_tls_mock(gateway_world.tmp, ca)
    gateway_world.procs.append(proc)
    gateway_world["secure"] = tls_url
    for name in PLAIN_MOCKS:
        gateway_world.mock(name)
    restricted = {"maxDataClassification": "restricted"}
    secure = h.model("secure", tls_url, **restricted)
    secure["spec"]["endpoint"]["caBundleSecretRef"] = {"name": "upstream-ca", "key": "ca.pem"}
    tiers = {
        "standard": ["plain", "secure"],  # equal scores: the policy's order, plain first
        "premium": ["plain-b"],
        "efficient": ["local"],
        "specialized": ["untrusted"],
    }
    docs = [
        h.secret_doc("upstream-ca", h.PLATFORM, {"ca.pem": ca.cert_pem.decode()}),
        h.model("plain", gateway_world["plain"], **restricted),
        secure,
        h.model("plain-b", gateway_world["plain-b"], tier="premium", **restricted),
        h.self_hosted("local", tier="efficient", **restricted),
        h.model("untrusted", tls_url, tier="specialized", **restricted),
        _policy("default", tiers, allowInClusterPlaintext=["local", "plain-b"]),
        _policy("strict", tiers),
        *h.tenant("pci", {"k": PCI}, list(tiers), compliance={"frameworks": ["pci_dss"]}),
        *h.tenant("open", {"k": OPEN}, list(tiers)),
        *h.tenant(
            "pci-strict",
            {"k": STRICT},
            list(tiers),
            routingPolicy={"name": "strict", "namespace": h.PLATFORM},
            compliance={"frameworks": ["hipaa"]},
        ),
    ]
    gateway_world.gateway(docs, *h.override("local", gateway_world["local"]))
    return gateway_world


def requests_seen(world: dict[str, Any]) -> dict[str, int]:
    return {name: h.mock_stats(world[name])["requests"] for name in PLAIN_MOCKS}


def chat(world: dict[str, Any], key: str, model: str, content: str = "hello") -> Any:
    c = openai.OpenAI(base_url=world["base"] + "/v1", api_key=key, max_retries=0)
    return c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=3
    )


def refusal(world: dict[str, Any], key: str, model: str, content: str = "hello") -> dict[str, Any]:
    with pytest.raises(openai.PermissionDeniedError) as err:
        chat(world, key, model, content)
    body = err.value.body
    assert isinstance(body, dict)
    return body


def test_unregulated_requests_take_the_plain_model_first(world: dict[str, Any]) -> None:
    """The control: without regulated data the policy's order stands, so the next tests'
    `secure` answers are the transit rule at work, not the order."""
    before = requests_seen(world)
    raw = chat(world, OPEN, "standard")
    assert raw.headers["x-llmplatform-model"] == "plain"
    assert requests_seen(world)["plain"] == before["plain"] + 1


def test_a_pci_tenant_skips_the_plain_model_for_the_tls_one(world: dict[str, Any]) -> None:
    before = requests_seen(world)
    raw = chat(world, PCI, "standard")
    assert raw.headers["x-llmplatform-model"] == "secure"  # over HTTPS, verified against the test CA
    assert raw.parse().choices[0].message.content
    assert requests_seen(world) == before  # nothing went to a plain upstream


def test_restricted_data_skips_the_plain_model(world: dict[str, Any]) -> None:
    before = requests_seen(world)
    raw = chat(world, OPEN, "standard", f"my ssn is {SSN}")
    assert raw.headers["x-llmplatform-data-classification"] == "restricted"
    assert raw.headers["x-llmplatform-model"] == "secure"
    assert requests_seen(world) == before


def test_no_tls_model_left_is_a_403_naming_the_reason(world: dict[str, Any]) -> None:
    before = requests_seen(world)
    body = refusal(world, PCI, "premium")
    assert body["code"] == "encryption_required"
    assert "hipaa or pci_dss" in body["message"] and "plain-b" in body["message"]
    assert "allowInClusterPlaintext" in body["message"]
    body = refusal(world, OPEN, "premium", f"ssn {SSN}")
    assert body["code"] == "encryption_required" and "classified restricted" in body["message"]
    # plain-b is named in allowInClusterPlaintext, but it is an endpoint model: no NetworkPolicy
    # of the operator protects it, so the allowance does not apply
    assert requests_seen(world) == before
    # unregulated traffic still reaches it
    assert chat(world, OPEN, "premium").headers["x-llmplatform-model"] == "plain-b"


def test_a_self_hosted_model_the_policy_allows_serves_in_cluster(world: dict[str, Any]) -> None:
    before = requests_seen(world)
    raw = chat(world, PCI, "efficient", f"ssn {SSN}")
    assert raw.headers["x-llmplatform-model"] == "local"
    assert requests_seen(world)["local"] == before["local"] + 1
    # under a policy that does not allow it, the same model is refused
    body = refusal(world, STRICT, "efficient")
    assert body["code"] == "encryption_required" and "local" in body["message"]
    assert requests_seen(world)["local"] == before["local"] + 1


def test_certificates_are_verified_without_a_bundle_too(world: dict[str, Any]) -> None:
    """`untrusted` is the same HTTPS server as `secure` without the CA bundle: the system's
    CAs do not know the test CA, so the gateway refuses the connection rather than send."""
    with pytest.raises(openai.APIStatusError) as err:
        chat(world, OPEN, "specialized")
    assert err.value.status_code == 503
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "upstream_unavailable"
    log = Path(world["gw"].log).read_text()
    assert "CERTIFICATE_VERIFY_FAILED" in log or "certificate verify failed" in log
