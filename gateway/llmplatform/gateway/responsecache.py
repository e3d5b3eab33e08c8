"""The response cache on the completion path: look up before the upstream call, store after.

Why apart from cache.py: cache.py is the store and its keys (no request, no metrics); this is
the glue that decides the key's target for a request, answers a hit (as JSON or replayed as a
stream, its PII scanned like any answer) and stores a fresh 200. Streams are stored by the
relay's collector.
"""

from __future__ import annotations

from aiohttp import web

from llmplatform.gateway import cache as rc
from llmplatform.gateway.accounting import answer_of, scan_json, take_usage
from llmplatform.gateway.compiled import Model
from llmplatform.gateway.context import Ctx
from llmplatform.gateway.relay import ClientGone, open_stream, send
from llmplatform.gateway.router import Candidate


async def lookup(
    ctx: Ctx,
    requested: str,
    tier_header: str | None,
    cands: list[Candidate],
    cache: rc.LocalCache | rc.RedisCache,
    models: dict[str, Model],
    write_seconds: float,
) -> web.StreamResponse | None:
    """The response from the cache when there is one; otherwise marks the request as a miss
    to be stored (see cache.py). A streamed hit is written under the client write deadline
    (`write_seconds`) like any stream: a hit can be a whole long answer."""
    policy, body, extra = ctx.policy, ctx.body, ctx.extra
    assert policy is not None and extra is not None
    if not rc.applies(policy.cache, body):
        return None
    redacted = ctx.copies is not None and cands[0].model.id in ctx.copies
    named = policy.by_name.get(requested)
    if named is not None:
        target = f"model:{named.id}"
    else:
        target = f"tier:{tier_header or policy.default_tier if requested == 'auto' else requested}"
    if redacted:
        target += ":redacted"  # what left the gateway differs, so may the answer
    ctx.cache_key = rc.key(ctx.tenant, ctx.endpoint, target, body)
    entry = await cache.get(ctx.cache_key)
    if entry is None:
        ctx.cache = "miss"
        return None
    ctx.cache, ctx.cache_key = "hit", None
    ctx.model, ctx.tier = entry.model, entry.tier
    ctx.served = models.get(entry.model)
    ctx.redacted = redacted
    raw = entry.body
    if ctx.scan_output:
        raw = scan_json(ctx, raw)
    usage = answer_of(raw).get("usage")
    if usage is not None and ctx.served is not None:
        take_usage(ctx, ctx.served, usage)
    ctx.usage_reported = True  # the stored usage, or none: never an estimate that costs
    ctx.cost = 0.0  # no upstream spend for a hit
    headers = {
        **extra,
        "x-request-id": ctx.request_id,
        "x-llmplatform-model": entry.model,
        "x-llmplatform-tier": entry.tier,
        "x-llmplatform-fallback-level": "0",
        "x-llmplatform-redacted": "true" if ctx.redacted else "false",
        "x-llmplatform-cache": "hit",
    }
    if not body.get("stream"):
        return web.Response(body=raw, content_type="application/json", headers=headers)
    out = open_stream(ctx, headers)
    await out.prepare(ctx.http)
    ctx.committed, ctx.committed_open = out, True  # from here on, failures are in-band
    try:
        await send(out, rc.as_stream(raw, ctx.form, ctx.include_usage()), ctx.http, write_seconds, last=True)
    except ClientGone as exc:
        ctx.status = 499
        if exc.timed_out:
            ctx.error_code = "client_write_timeout"
    ctx.committed_open = False
    return out


async def store(ctx: Ctx, response: web.StreamResponse, cache: rc.LocalCache | rc.RedisCache) -> None:
    """Store a complete 200 JSON answer of a cache miss."""
    if ctx.cache_key is not None and type(response) is web.Response and response.status == 200:
        assert isinstance(response.body, bytes)
        await cache.put(ctx.cache_key, rc.Entry(ctx.model, ctx.tier, response.body), ctx.cache_ttl)
