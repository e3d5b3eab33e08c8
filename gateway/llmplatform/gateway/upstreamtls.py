"""TLS towards upstreams: one verifying SSL context per custom CA bundle, built at load time.

Why a module of its own: certificate verification is a security property that must hold on
every path, so the one place that makes SSL contexts is small enough to read at a glance. It
never turns verification off: a model without a CA bundle uses aiohttp's default context (the
system's trusted CAs, hostname checked), and a model with one gets
`ssl.create_default_context(cadata=...)`, which also requires a valid certificate naming the
url's host, only chaining to the given CAs instead. Contexts are cached by the bundle's SHA-256,
so a config reload (every second when the source changes) does not rebuild them, and models
sharing a bundle share a context (and aiohttp's connection pool keys stay few).
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass

MAX_CACHED = 64


@dataclass(frozen=True)
class UpstreamTLS:
    """What a model's attempts pass as aiohttp's `ssl=`: True (default verification), or a
    context; `error` says why the model's CA bundle could not be used (then no attempt is made)."""

    ssl: ssl.SSLContext | bool
    error: str | None = None


DEFAULT = UpstreamTLS(True)
_contexts: dict[str, UpstreamTLS] = {}


def for_bundle(bundle: bytes | None, where: str) -> UpstreamTLS:
    """The TLS settings for a CA bundle read from `where` (for the message); None: missing."""
    if bundle is None:
        return UpstreamTLS(True, f"CA bundle {where} cannot be read (is its Secret mounted?)")
    digest = hashlib.sha256(bundle).hexdigest()
    cached = _contexts.get(digest)
    if cached is not None:
        return cached
    try:
        context = ssl.create_default_context(cadata=bundle.decode("ascii"))
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
        return UpstreamTLS(True, f"CA bundle {where} holds no usable PEM certificate: {exc}")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    if len(_contexts) >= MAX_CACHED:
        _contexts.pop(next(iter(_contexts)))
    result = _contexts[digest] = UpstreamTLS(context)
    return result
