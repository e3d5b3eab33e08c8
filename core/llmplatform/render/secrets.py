"""Secrets as the rendering core sees them: decoded values by namespace, name and key.

Why a separate module: the only thing the core does with secret *values* is hash API keys;
keeping the decoding and hashing here makes it easy to check that no value ever reaches the
gateway config, an object or a message (the store's repr shows names only).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from llmplatform.contract.keys import hash_api_key as hash_api_key


def decode_secret(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """A Secret's values as bytes: base64 `data`, overlaid by plain `stringData` (as the API
    server merges them). Entries that are not valid base64 are left out."""
    values: dict[str, bytes] = {}
    for key, encoded in (secret.get("data") or {}).items():
        try:
            values[str(key)] = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            continue
    for key, text in (secret.get("stringData") or {}).items():
        values[str(key)] = str(text).encode("utf-8")
    return values


class SecretStore:
    """Read-only index of Secrets by (namespace, name)."""

    def __init__(self, secrets: Iterable[Mapping[str, Any]]) -> None:
        self._by_ref: dict[tuple[str, str], dict[str, bytes]] = {}
        for secret in secrets:
            meta = secret.get("metadata") or {}
            ref = (str(meta.get("namespace") or "default"), str(meta.get("name", "")))
            if ref in self._by_ref:
                raise ValueError(f"duplicate Secret {ref[0]}/{ref[1]}")
            self._by_ref[ref] = decode_secret(secret)

    def __repr__(self) -> str:
        names = sorted(f"{ns}/{name}" for ns, name in self._by_ref)
        return f"SecretStore({names})"

    def exists(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._by_ref

    def value(self, namespace: str, name: str, key: str) -> bytes | None:
        """The decoded value, or None when the Secret or the key is missing."""
        return self._by_ref.get((namespace, name), {}).get(key)

    def problem(self, namespace: str, name: str, key: str) -> str | None:
        """Why the value cannot be read, or None when it can."""
        if not self.exists(namespace, name):
            return f"Secret {namespace}/{name} not found"
        if self.value(namespace, name, key) is None:
            return f"Secret {namespace}/{name} has no key {key!r}"
        return None
