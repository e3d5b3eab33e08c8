"""Throw-away certificate authorities, server and client certificates for TLS tests, and a
folder that is updated the way the kubelet updates a mounted Secret: the one test CA of the
project (the gateway's own TLS, its upstreams' TLS, the chart's exposure). Made in the test:
no files from elsewhere, no network, nothing the system trusts (a client that verifies against
the system's CAs must refuse these certificates, and one given the CA must accept them).

Why `cryptography`: it is the maintained binding to OpenSSL for building X.509 certificates in
Python (the standard library's ssl module can use certificates but not make them), and it is
already the test dependency that mints the e2e control plane's PKI.

Why `SecretDir`: cert-manager renews a certificate by updating its Secret; the kubelet then
writes the new files into a fresh `..<timestamp>` folder and atomically swaps the `..data`
symlink that the visible names (`tls.crt -> ..data/tls.crt`) point through. Rotation tests must
exercise that layout, not just an overwritten file.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Issued:
    """A certificate and its key, PEM-encoded."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def write(self, folder: Path, name: str) -> tuple[Path, Path]:
        """`folder/name.crt` and `folder/name.key`."""
        folder.mkdir(parents=True, exist_ok=True)
        cert, key = folder / f"{name}.crt", folder / f"{name}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        return cert, key


CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class CA:
    """A self-signed certificate authority that issues server and client certificates."""

    def __init__(self, name: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(CA_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        self.issued = Issued(cert, key)

    @property
    def cert_pem(self) -> bytes:
        return self.issued.cert_pem

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.cert_pem)
        return path

    def issue(
        self, cn: str, *, server: bool = True, sans: tuple[str, ...] = ("127.0.0.1", "localhost")
    ) -> Issued:
        """A leaf certificate: a server one valid for `sans` (IP addresses or DNS names), or a
        client one (`server=False`)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.issued.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issued.key.public_key()),
                critical=False,
            )
        )
        if server:
            names: list[x509.GeneralName] = []
            for san in sans:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    names.append(x509.DNSName(san))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return Issued(builder.sign(self.issued.key, hashes.SHA256()), key)


def client_context(ca: CA | Path, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A client context trusting `ca`, presenting `client` (cert, key) when given."""
    ctx = ssl.create_default_context()
    if isinstance(ca, CA):
        ctx.load_verify_locations(cadata=ca.cert_pem.decode())
    else:
        ctx.load_verify_locations(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


class SecretDir:
    """A folder laid out like a mounted Secret and updated like the kubelet does it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def file(self, key: str) -> Path:
        return self.path / key

    def update(self, files: dict[str, bytes]) -> None:
        """Write `files` into a new `..<id>` folder, swap `..data` to it in one rename, link
        each visible name through `..data`, then remove the previous folder."""
        data = self.path / "..data"
        old = os.readlink(data) if data.is_symlink() else None
        fresh = f"..{dt.datetime.now(dt.UTC):%Y_%m_%d_%H_%M_%S}.{uuid.uuid4().hex[:8]}"
        (self.path / fresh).mkdir()
        for key, content in files.items():
            (self.path / fresh / key).write_bytes(content)
        tmp = self.path / "..data_tmp"
        os.symlink(fresh, tmp)
        os.replace(tmp, data)
        for key in files:
            link = self.path / key
            if not link.is_symlink():
                os.symlink(f"..data/{key}", link)
        if old is not None:
            for child in (self.path / old).iterdir():
                child.unlink()
            (self.path / old).rmdir()
