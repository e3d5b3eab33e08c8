"""upstreamtls: one verifying SSL context per CA bundle, and an unusable bundle named, never
replaced by a weaker check."""

from __future__ import annotations

import ssl

from llmplatform.gateway.upstreamtls import DEFAULT, for_bundle
from llmplatform_testing.certs import CA


def test_a_bundle_gives_a_verifying_context_shared_by_equal_bundles() -> None:
    pem = CA("llmplatform test CA").cert_pem
    tls = for_bundle(pem, "Secret ns/ca key 'ca.pem'")
    assert tls.error is None and isinstance(tls.ssl, ssl.SSLContext)
    assert tls.ssl.verify_mode == ssl.CERT_REQUIRED and tls.ssl.check_hostname
    assert len(tls.ssl.get_ca_certs()) == 1
    assert for_bundle(pem, "elsewhere") is tls  # built once per distinct bundle


def test_an_unusable_bundle_is_an_error_not_a_weaker_check() -> None:
    missing = for_bundle(None, "Secret ns/ca key 'ca.pem'")
    assert missing.error is not None and "cannot be read" in missing.error
    broken = for_bundle(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", "x")
    assert broken.error is not None and "no usable PEM certificate" in broken.error
    assert DEFAULT.ssl is True and DEFAULT.error is None  # aiohttp's default: system CAs, verified
