"""API keys as the gateway config carries them: a SHA-256, never the key.

Why in the contract: the rendering core hashes the keys it finds in Secrets and the gateway
hashes the bearer token of every request; both must use this one function or no key matches.
"""

from __future__ import annotations

import hashlib


def hash_api_key(key: bytes | str) -> str:
    """The hex SHA-256 of an API key, as the gateway config carries it.

    Surrounding whitespace is stripped first: keys are tokens without spaces, and a Secret
    made with `kubectl create secret --from-file` often ends in a newline. The gateway hashes
    the bearer token with this same function.
    """
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return hashlib.sha256(raw.strip()).hexdigest()
