"""Tenant usage for TenantQuota status, read from the gateways' shared Redis, and restored into
Redis from that status when Redis has lost it.

Why the operator reads Redis (rather than each gateway patching status): with N gateway
replicas only the shared counters are the truth, the gateways need no write access to the
Kubernetes API, and one reader turns 2,000 tenants into one MGET per refresh. The key scheme
is the contract's (`llmplatform.contract.usage`), which the gateway's limiter writes.

Why the operator restores (and not the gateway): status.usage is already the operator's, in
the API server (etcd: durable and replicated), read in every pass; one writer restores each
tenant once, where N gateways would race, and the gateways' config stays free of counters that
change every pass (a config change reloads every gateway). The price is the gap until the next
usage pass (`--usage-seconds`), in which the gateways count from what Redis kept.

How: each tenant has a marker key (`contract.usage.checkpoint_key`) without expiry. A Redis
without it has lost the tenant's counters (a restart without persistence, a flush) or never had
them; one Lua script then raises each checkpointed counter of the current window to the
checkpoint (never lowering one, so spend counted since the loss is kept when it is larger) and
sets the marker, atomically, in the tenant's slot. A Redis with the marker is never touched,
so counters that settlement lowered below the last checkpoint stay lowered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import redis

from llmplatform.contract import redisurl
from llmplatform.contract.usage import MICRO, checkpoint_key, restorable, tenant_usage_keys, usage_day

log = logging.getLogger("llmplatform.operator.usage")

RESTORE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
for i = 2, #KEYS do
  local want = tonumber(ARGV[2 * i - 2])
  if tonumber(redis.call('GET', KEYS[i]) or '0') < want then
    redis.call('SET', KEYS[i], want, 'KEEPTTL')
    if redis.call('TTL', KEYS[i]) < 0 then
      redis.call('EXPIRE', KEYS[i], ARGV[2 * i - 1])
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
"""KEYS: the marker, then counters; ARGV[1]: the marker's value, then (value, ttl) per counter."""


class RedisUsage:
    def __init__(self, url: str) -> None:
        self.client: Any = redisurl.connect(redis, url, timeout=2)
        self._restore = self.client.register_script(RESTORE_LUA)
        self._mget = getattr(self.client, "mget_nonatomic", self.client.mget)  # Cluster: per slot
        self.healthy = True
        self.restored = 0
        """Tenants whose counters were restored from a checkpoint (for tests and logs)."""

    def read(self, checkpoints: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, Any]] | None:
        """Usage per tenant id ("namespace/name"), given each one's checkpoint (its status.usage,
        or None); None when Redis cannot be read (the status then keeps its previous usage
        rather than reporting zeros)."""
        now = time.time()
        plan = [(tid, tenant_usage_keys(tid, now)) for tid in checkpoints]
        keys = [key for tid, fields in plan for key in (checkpoint_key(tid), *(k for _, k, _ in fields))]
        try:
            values = self._mget(keys) if keys else []
            lost = [tid for i, (tid, _) in enumerate(plan) if values[i * 4] is None]
            if lost:
                self._restore_lost(lost, checkpoints, now)
                values = self._mget(keys)
        except redis.RedisError as exc:
            if self.healthy:
                log.warning("cannot read tenant usage from Redis: %s", exc)
            self.healthy = False
            return None
        self.healthy = True
        out: dict[str, dict[str, Any]] = {}
        it = iter(values)
        day = usage_day(now)
        for tid, fields in plan:
            next(it)  # the marker
            usage: dict[str, Any] = {}
            for status_field, _, micro in fields:
                raw = next(it)
                count = int(raw) if raw is not None else 0
                usage[status_field] = round(count / MICRO, 6) if micro else count
            usage["day"] = day
            out[tid] = usage
        return out

    def _restore_lost(
        self, tenants: list[str], checkpoints: Mapping[str, Mapping[str, Any] | None], now: float
    ) -> None:
        """Restore each tenant whose marker is missing from its checkpoint (one script call per
        tenant: its keys share one slot; a Redis that lost its data loses it for all tenants
        at once, so this runs rarely, not every pass)."""
        restored = []
        for tid in tenants:
            counters = restorable(tid, dict(checkpoints.get(tid) or {}), now)
            args: list[Any] = [str(int(now))]
            for _, value, ttl in counters:
                args += [value, ttl]
            if (
                self._restore(keys=[checkpoint_key(tid), *(k for k, _, _ in counters)], args=args)
                and counters
            ):
                restored.append(tid)
        if restored:
            self.restored += len(restored)
            log.warning(
                "Redis had lost the usage counters of %d tenant(s); restored them from "
                "TenantQuota status.usage: %s",
                len(restored),
                ", ".join(restored[:10]) + (" ..." if len(restored) > 10 else ""),
            )
