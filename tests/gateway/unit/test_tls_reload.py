"""`CertReloader` on its own: which changes of the files it loads, which it refuses, and that a
refused or missing pair never replaces the serving context.

Why in-process: the decisions (changed or not, loads or not, stale or not) are a function of
the files alone; tests/gateway/test_tls.py proves the same through real handshakes, under load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from llmplatform.gateway.tls import CertReloader, TlsFiles
from llmplatform_testing.certs import CA, SecretDir


def rejected() -> float:
    return REGISTRY.get_sample_value("llmplatform_tls_reloads_total", {"result": "rejected"}) or 0.0


def stale() -> float | None:
    return REGISTRY.get_sample_value("llmplatform_tls_stale")


@pytest.fixture()
def ca() -> CA:
    return CA("reload-test-ca")


def test_in_place_rewrites_one_file_at_a_time(ca: CA, tmp_path: Path) -> None:
    """A tool that overwrites the certificate, then the key (same sizes: EC keys): in between,
    the pair does not match and is refused; once both are new, it loads."""
    a, b = ca.issue("a"), ca.issue("b")
    cert, key = a.write(tmp_path, "tls")
    certs = CertReloader(TlsFiles(str(cert), str(key)))
    serving = certs.current
    assert certs.reload() is False  # nothing changed
    before = rejected()
    cert.write_bytes(b.cert_pem)
    assert certs.reload() is False
    assert certs.current is serving and rejected() == before + 1 and stale() == 1
    assert certs.reload() is False and rejected() == before + 1  # refused once, not every poll
    key.write_bytes(b.key_pem)
    assert certs.reload() is True
    assert certs.current is not serving and stale() == 0


def test_garbage_and_missing_files_never_replace_the_serving_pair(ca: CA, tmp_path: Path) -> None:
    a = ca.issue("a")
    folder = SecretDir(tmp_path / "tls")
    folder.update({"tls.crt": a.cert_pem, "tls.key": a.key_pem})
    files = TlsFiles(str(folder.file("tls.crt")), str(folder.file("tls.key")))
    certs = CertReloader(files)
    serving = certs.current
    before = rejected()
    folder.update({"tls.crt": b"-----BEGIN CERTIFICATE-----\nnot one\n", "tls.key": a.key_pem})
    assert certs.reload() is False and certs.current is serving and rejected() == before + 1
    # the Secret's files disappear (a deleted Secret): refused once, the pair still serves
    (folder.file("tls.crt")).unlink()
    assert certs.reload() is False and certs.reload() is False
    assert certs.current is serving and rejected() == before + 2 and stale() == 1
    # the same good pair comes back: loaded again, no longer stale
    folder.update({"tls.crt": a.cert_pem, "tls.key": a.key_pem})
    assert certs.reload() is True and stale() == 0


def test_a_renewed_client_ca_is_picked_up(ca: CA, tmp_path: Path) -> None:
    a = ca.issue("a")
    folder = SecretDir(tmp_path / "tls")
    folder.update({"tls.crt": a.cert_pem, "tls.key": a.key_pem, "ca.crt": CA("clients-1").cert_pem})
    files = TlsFiles(str(folder.file("tls.crt")), str(folder.file("tls.key")), str(folder.file("ca.crt")))
    certs = CertReloader(files)
    first = certs.current
    assert [c["subject"] for c in first.get_ca_certs()] == [((("commonName", "clients-1"),),)]
    folder.update({"tls.crt": a.cert_pem, "tls.key": a.key_pem, "ca.crt": CA("clients-2").cert_pem})
    assert certs.reload() is True
    assert [c["subject"] for c in certs.current.get_ca_certs()] == [((("commonName", "clients-2"),),)]
    assert certs.listening is first  # the socket's context stays; handshakes move to `current`
