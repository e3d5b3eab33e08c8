"""The stream relay: upstream SSE events to the client, in OpenAI form.

Why its own room: once the first event has arrived the stream is committed to the client, so
from here on failures are reported in-band (an error event, then `[DONE]`) and never retried;
on the way each event gives up its usage (to settle budgets), feeds the output scanner and the
cache collector when they are on, and the usage-only chunk is dropped when the client did not
ask for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from llmplatform.gateway import cache as rc
from llmplatform.gateway import governance as gv
from llmplatform.gateway import metrics as m
from llmplatform.gateway import sse
from llmplatform.gateway.accounting import count_output, output_tokens, take_usage
from llmplatform.gateway.compiled import Model
from llmplatform.gateway.context import Ctx
from llmplatform.gateway.errors import error_body
from llmplatform.gateway.health import HealthBook

log = logging.getLogger("llmplatform.gateway")

STREAM_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


@dataclass(slots=True)
class StreamState:
    client_usage: bool
    done: bool = False
    events: int = 0
    scanner: gv.StreamScanner | None = None
    collector: rc.Collector | None = None


async def openai_events(
    resp: aiohttp.ClientResponse, ctx: Ctx, model: Model, health: HealthBook
) -> AsyncIterator[bytes]:
    """The upstream's SSE events in OpenAI form: as they come from an OpenAI-style upstream, or
    through the model's adapter (one upstream event may become zero or more). An error event
    mid-stream reaches the client in-band and counts as a failed stream, as a dropped
    connection does in `relay`."""
    translator = model.adapter.stream_translator()
    while (event := await sse.read_event(resp)) is not None:
        if translator is None:
            yield event
            continue
        try:
            translated = translator.feed(event)
        except ValueError as exc:
            raise aiohttp.ClientPayloadError(str(exc)) from exc
        if translator.failed_status is not None:
            ctx.status, ctx.error_code = 502, "upstream_stream_error"
            m.UPSTREAM_ERRORS.labels(model.name, model.tier, str(translator.failed_status)).inc()
            assert ctx.policy is not None
            health.get(model.id).record_failure(ctx.policy.breaker_failures)
        for out in translated:
            yield out


def _filter(event: bytes, state: StreamState, ctx: Ctx, model: Model) -> bytes | None:
    """Read one event (one JSON parse): take its usage, count the output it carries towards
    what the client was sent (charged when no believable usage comes, e.g. when the client
    leaves mid-stream), feed the scanner and the cache collector, and decide whether the client
    sees it: the gateway always asks upstream for usage (to settle budgets) but only forwards
    the usage-only chunk when the client asked for it."""
    if sse.is_done(event):
        state.done = True
        if state.scanner is not None:
            last = state.scanner.finish()
            if last is not None:
                return sse.frame(last) + event
        return event
    state.events += 1
    if not event.startswith(b"data:"):
        return event
    try:
        chunk = json.loads(event[5:])
    except ValueError:
        if state.collector is not None:
            state.collector.ok = False
        return event
    if not isinstance(chunk, dict):
        return event
    if state.scanner is not None:
        chunk = state.scanner.chunk(chunk)
        event = sse.event(chunk)
    if state.collector is not None:
        state.collector.feed(chunk)
    usage = chunk.get("usage")
    if usage is not None:
        take_usage(ctx, model, usage)
        if not state.client_usage and not chunk.get("choices"):
            return None
    ctx.relayed_out += output_tokens(chunk)
    return event


async def relay(
    events: AsyncIterator[bytes],
    first: bytes,
    ctx: Ctx,
    model: Model,
    headers: dict[str, str],
    health: HealthBook,
    cache: rc.LocalCache | rc.RedisCache,
) -> web.StreamResponse:
    policy = ctx.policy
    assert policy is not None
    request = ctx.http
    out = web.StreamResponse(status=200, headers={**headers, **STREAM_HEADERS})
    ctx.served = model  # from here the upstream has answered: the request is charged
    ctx.first_chunk_at = time.perf_counter()
    ctx.first_chunk = ctx.first_chunk_at - ctx.start
    state = StreamState(client_usage=ctx.include_usage())
    if ctx.scan_output:
        state.scanner = gv.StreamScanner(ctx.endpoint, ctx.hipaa)
    if ctx.cache_key is not None:
        state.collector = rc.Collector(ctx.endpoint)
    event: bytes | None = first
    try:
        ctx.out = out
        await out.prepare(request)
        while event is not None:
            forwarded = _filter(event, state, ctx, model)
            if forwarded is not None:
                await out.write(forwarded + sse.SEPARATOR)  # the event keeps its own line ends
            if state.done:
                break
            async with asyncio.timeout(policy.stream_idle_seconds):
                event = await anext(events, None)
        if not state.done:
            raise aiohttp.ClientPayloadError("upstream closed the stream before [DONE]")
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        if request.transport is None or request.transport.is_closing():
            ctx.status = 499  # the client went away; nothing to tell it (charged: ctx.relayed_out)
            ctx.chunks = state.events
            return out
        kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
        m.UPSTREAM_ERRORS.labels(model.name, model.tier, kind).inc()
        health.get(model.id).record_failure(policy.breaker_failures)
        ctx.status, ctx.error_code = 502, "upstream_stream_error"
        log.warning(
            "stream broke after it started",
            extra={"request_id": ctx.request_id, "model": model.name, "kind": kind},
        )
        message = (
            "the upstream stream timed out"
            if kind == "timeout"
            else "the upstream connection was lost mid-stream"
        )
        err = error_body(502, message, code="upstream_stream_error")
        await out.write(sse.frame(err) + sse.DONE + sse.SEPARATOR)
    ctx.chunks = state.events
    await out.write_eof()
    if state.scanner is not None:
        count_output(ctx, state.scanner.findings)
    if state.collector is not None and ctx.status == 200 and ctx.cache_key is not None:
        stored = state.collector.result()
        if stored is not None:
            await cache.put(ctx.cache_key, rc.Entry(model.name, ctx.tier, stored), ctx.cache_ttl)
    return out
