"""TLS on the gateway's own port, with certificates re-read when their files change.

Why here: the gateway terminates TLS itself where no proxy or mesh sidecar does it (end-to-end
encryption, meshes without sidecars). Certificates in Kubernetes are Secrets that cert-manager
renews in place: the kubelet writes the new files into a fresh timestamped folder and swaps the
mount's `..data` symlink, so the paths the gateway was given never change, only what they
resolve to. A restart per renewal would drop every open stream; instead:

- `CertReloader.reload` (every `--reload-interval`) reads the files through their *resolved*
  paths and, when a path or a content digest changed, builds a complete new `SSLContext` from them.
  Only a context that loaded (certificate chain, a key that matches it, the client CA) ever
  serves: a broken or half-written pair is logged, counted in `llmplatform_tls_reloads
  {result="rejected"}`, flagged by `llmplatform_tls_stale` = 1, and the previous pair keeps
  serving until the files change again.
- Swapping contexts: the listening socket keeps the context it was created with; its
  `sni_callback` (OpenSSL's servername callback, called for every ClientHello, with or without
  SNI) moves each new handshake onto the newest context (`SSLObject.context = ...`, i.e.
  `SSL_set_SSL_CTX`). Connections already open keep the session they have: nothing is dropped.
- Client certificates (`--tls-client-ca-file`): required and verified in the handshake, so a
  client without one, or with one from another CA, never gets to send a request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from dataclasses import dataclass

from llmplatform.gateway import metrics as m

log = logging.getLogger("llmplatform.gateway")

Fingerprint = tuple[tuple[str, str], ...]
MAX_FILE_BYTES = 1 << 20
"""Read at most this much of a file for its digest (a certificate bundle is a few KB)."""


@dataclass(frozen=True)
class TlsFiles:
    """Where the serving certificate chain, its key and (optionally) the client CA live."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def paths(self) -> list[str]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None]


def resolve(files: TlsFiles) -> tuple[TlsFiles, Fingerprint]:
    """The files with symlinks resolved, and what identifies them: the resolved path (a kubelet
    swap changes it) and a digest of the content (an in-place rewrite changes it, even one of
    the same size within the file system's timestamp granularity). A few kilobytes read per
    poll: nothing next to a TLS handshake."""
    resolved = [os.path.realpath(p) for p in files.paths()]
    marks = []
    for path in resolved:
        with open(path, "rb") as f:
            marks.append((path, hashlib.sha256(f.read(MAX_FILE_BYTES)).hexdigest()))
    ca = resolved[2] if files.client_ca_file is not None else None
    return TlsFiles(resolved[0], resolved[1], ca), tuple(marks)


def build_context(files: TlsFiles) -> ssl.SSLContext:
    """A server context from the files; raises (OSError, ssl.SSLError) if any part fails to
    load, including a key that does not match the certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])  # aiohttp's server speaks HTTP/1.1 only
    ctx.load_cert_chain(files.cert_file, files.key_file)
    if files.client_ca_file is not None:
        ctx.load_verify_locations(cafile=files.client_ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class CertReloader:
    """The serving TLS context of one worker, replaced when the files change and load."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        resolved, fingerprint = resolve(files)
        self._fingerprint: Fingerprint | None = fingerprint
        self.current = build_context(resolved)  # at start a broken pair is fatal (the CLI checks)
        self.listening = self.current
        """The context the socket listens with; every handshake is moved onto `current`."""
        self.listening.sni_callback = self._select
        m.TLS_STALE.set(0)

    def _select(
        self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext
    ) -> None:
        current = self.current
        if current is not ctx:
            conn.context = current

    def reload(self) -> bool:
        """Load the files if they changed; True when a new pair now serves new connections."""
        try:
            resolved, fingerprint = resolve(self.files)
        except OSError as exc:
            message = f"cannot read the TLS files: {exc}"
            if self._fingerprint is not None:  # once per outage, not once per poll
                self._reject(message)
            self._fingerprint = None  # whatever appears next is loaded, even the same pair
            return False
        if fingerprint == self._fingerprint:
            return False
        self._fingerprint = fingerprint
        try:
            ctx = build_context(resolved)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._reject(f"cannot load {', '.join(resolved.paths())}: {exc}")
            return False
        self.current = ctx
        m.TLS_RELOADS.labels("loaded").inc()
        m.TLS_STALE.set(0)
        log.info("TLS certificate reloaded", extra={"cert_file": self.files.cert_file})
        return True

    def _reject(self, message: str) -> None:
        """Files that must not serve: log, count, flag stale; the serving pair stays."""
        m.TLS_RELOADS.labels("rejected").inc()
        m.TLS_STALE.set(1)
        log.error("TLS certificate rejected, the previous one keeps serving: %s", message)

    async def run(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            await loop.run_in_executor(None, self.reload)
