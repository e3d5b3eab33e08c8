"""Tenant usage for TenantQuota status, read from the gateways' shared Redis.

Why the operator reads Redis (rather than each gateway patching status): with N gateway
replicas only the shared counters are the truth, the gateways need no write access to the
Kubernetes API, and one reader turns 2,000 tenants into one MGET per refresh. The key scheme
is the contract's (`llmplatform.contract.usage`), which the gateway's limiter writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import redis

from llmplatform.contract.usage import MICRO, tenant_usage_keys

log = logging.getLogger("llmplatform.operator.usage")


class RedisUsage:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.healthy = True

    def read(self, tenant_ids: Iterable[str]) -> dict[str, dict[str, Any]] | None:
        """Usage per tenant id ("namespace/name"); None when Redis cannot be read (the status
        then keeps its previous usage rather than reporting zeros)."""
        now = time.time()
        plan = [(tid, tenant_usage_keys(tid, now)) for tid in tenant_ids]
        keys = [key for _, fields in plan for _, key, _ in fields]
        try:
            values = self.client.mget(keys) if keys else []
        except redis.RedisError as exc:
            if self.healthy:
                log.warning("cannot read tenant usage from Redis: %s", exc)
            self.healthy = False
            return None
        self.healthy = True
        out: dict[str, dict[str, Any]] = {}
        it = iter(values)
        for tid, fields in plan:
            usage: dict[str, Any] = {}
            for status_field, _, micro in fields:
                raw = next(it)
                count = int(raw) if raw is not None else 0
                usage[status_field] = round(count / MICRO, 6) if micro else count
            out[tid] = usage
        return out
