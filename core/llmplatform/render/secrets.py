"""Secrets as the rendering core sees them: decoded values by namespace, name and key, and the
body of the key Secrets the operator mints.

Why a separate module: the only thing the core does with secret *values* is hash API keys;
keeping the decoding and hashing here makes it easy to check that no value ever reaches the
gateway config, an object or a message (the store's repr shows names only). The key Secret's
body is rendered here like every other object; only its random value comes from the operator,
since the core does no I/O and has no randomness.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmplatform.api.tenantquota import GENERATED_KEY_DATA_KEY
from llmplatform.contract.keys import hash_api_key as hash_api_key
from llmplatform.contract.names import API_VERSION, KEY_LABEL, MANAGED_BY, QUOTA_LABEL


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

    def values_of(self, namespace: str, name: str) -> Mapping[str, bytes] | None:
        """Every decoded value of one Secret (None when it does not exist): what a reader of
        any of its keys depends on, for the incremental renderer's checks."""
        return self._by_ref.get((namespace, name))

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


@dataclass(frozen=True)
class GeneratedKey:
    """A generated API key whose Secret should exist: the quota has a grant in force.

    `render` lists these only for quotas in the gateway config (admitted now, or keeping an
    earlier grant), so a quota that was never admitted gets no Secret and a quota whose earlier
    grant stays in force keeps its keys.
    """

    namespace: str
    secret_name: str
    quota_name: str
    quota_uid: str | None
    key_name: str

    def secret(self, value: str) -> dict[str, Any]:
        """The Secret holding `value` (the operator's random key), owned by the TenantQuota so
        that deleting the quota deletes its keys."""
        meta: dict[str, Any] = {
            "name": self.secret_name,
            "namespace": self.namespace,
            "labels": {**MANAGED_BY, QUOTA_LABEL: self.quota_name, KEY_LABEL: self.key_name},
        }
        if self.quota_uid:
            meta["ownerReferences"] = [
                {
                    "apiVersion": API_VERSION,
                    "kind": "TenantQuota",
                    "name": self.quota_name,
                    "uid": self.quota_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": meta,
            "data": {GENERATED_KEY_DATA_KEY: encoded},
        }
