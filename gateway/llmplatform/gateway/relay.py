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
from llmplatform.gateway.providers.base import Adapter

log = logging.getLogger("llmplatform.gateway")

STREAM_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """Bounds of one relayed stream (the gateway's flags)."""

    max_bytes: int
    """Most upstream bytes relayed in one stream; past it the stream ends with an in-band error."""
    write_seconds: float
    """Longest wait for a client to take a write; past it the client counts as gone (499)."""


def open_stream(ctx: Ctx, headers: dict[str, str]) -> web.StreamResponse:
    """The client's stream response (not prepared): the dialect's when the client speaks its
    own API (Ctx.dialect renders the OpenAI events written to it)."""
    headers = {**headers, **STREAM_HEADERS}
    if ctx.dialect is not None:
        return ctx.dialect.stream(ctx, headers)
    return web.StreamResponse(status=200, headers=headers)


class ClientGone(Exception):
    """The client closed the connection or stopped reading (`timed_out`)."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


async def send(
    out: web.StreamResponse, data: bytes, request: web.Request, seconds: float, *, last: bool = False
) -> None:
    """Write to the client, at most `seconds` waiting for it to read: a client that stops
    reading would otherwise hold the upstream connection and the buffered bytes forever.
    `last` also ends the body (`write_eof`, the chunked terminator), under the same deadline:
    ending the body waits for the client to drain what is buffered, so an unguarded end would
    let a client that stopped reading on the last chunk hold the request forever."""
    try:
        async with asyncio.timeout(seconds):
            if data:
                await out.write(data)  # through `write`: dialect translators wrap only that
            if last:
                await out.write_eof()
    except TimeoutError as exc:
        if request.transport is not None:
            request.transport.abort()  # frees what is buffered for it now
        m.CONNECTIONS_CLOSED.labels("write_timeout").inc()
        raise ClientGone(f"the client did not read for {seconds}s", timed_out=True) from exc
    except (ConnectionError, aiohttp.ClientConnectionError) as exc:
        raise ClientGone(str(exc)) from exc


async def end_in_band(
    out: web.StreamResponse, ctx: Ctx, status: int, code: str, message: str, seconds: float
) -> None:
    """End a stream that has started: an OpenAI error event, `[DONE]`, end of body. The status
    line has gone already, so this is the only way left to tell the client."""
    ctx.status, ctx.error_code = status, code
    try:
        await send(
            out,
            sse.frame(error_body(status, message, code=code)) + sse.DONE + sse.SEPARATOR,
            ctx.http,
            seconds,
            last=True,
        )
    except ClientGone:
        ctx.status = 499
    ctx.committed_open = False


@dataclass(slots=True)
class StreamState:
    client_usage: bool
    done: bool = False
    events: int = 0
    scanner: gv.StreamScanner | None = None
    collector: rc.Collector | None = None


async def openai_events(
    resp: aiohttp.ClientResponse, ctx: Ctx, model: Model, health: HealthBook, adapter: Adapter | None = None
) -> AsyncIterator[bytes]:
    """The upstream's SSE events in OpenAI form: as they come from an OpenAI-style upstream, or
    through the model's adapter (one upstream event may become zero or more). An error event
    mid-stream reaches the client in-band and counts as a failed stream, as a dropped
    connection does in `relay`. `adapter`: the attempt's, when not the model's own (a
    dialect's: Ctx.dialect)."""
    translator = (adapter or model.adapter).stream_translator()
    while (event := await sse.read_event(resp)) is not None:
        if translator is None:
            sse.check_openai_event(event)
            yield event
            continue
        try:
            translated = translator.feed(event)
        except sse.BadStream:
            raise
        except ValueError as exc:
            raise sse.BadStream("malformed", str(exc)) from exc
        if translator.failed_status is not None:
            ctx.status, ctx.error_code = 502, "upstream_stream_error"
            m.UPSTREAM_ERRORS.labels(model.name, model.tier, str(translator.failed_status)).inc()
            assert ctx.policy is not None
            health.get(model.id).record_failure(ctx.policy.breaker_failures)
        for out in translated:
            yield out


def _stream_failure(exc: Exception) -> tuple[str, str]:
    """(metric kind, message for the client) of what broke a started stream."""
    if isinstance(exc, sse.BadStream):  # the detail (upstream bytes) goes to the log only
        if exc.reason == "too_large":
            return "stream_too_large", "the upstream stream exceeded the gateway's size limits"
        return "malformed_stream", "the upstream sent a malformed stream (not OpenAI SSE)"
    if isinstance(exc, TimeoutError):
        return "timeout", "the upstream stream timed out"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connect", "the upstream connection was lost mid-stream"
    return "internal", "the gateway failed while relaying the stream"


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
    limits: StreamLimits,
) -> web.StreamResponse:
    """Relay a stream whose first event has arrived. Whatever fails from here on (the upstream,
    the client, the gateway itself) ends the stream in-band, never with a second status line."""
    policy = ctx.policy
    assert policy is not None
    request = ctx.http
    out = open_stream(ctx, headers)
    ctx.served = model  # from here the upstream has answered: the request is charged
    try:
        await out.prepare(request)
    except (ConnectionError, aiohttp.ClientConnectionError):
        ctx.status = 499  # gone before the first byte: charged the prompt (nothing relayed)
        return out
    ctx.committed, ctx.committed_open = out, True
    ctx.first_chunk_at = time.perf_counter()
    ctx.first_chunk = ctx.first_chunk_at - ctx.start
    state = StreamState(client_usage=ctx.include_usage())
    if ctx.scan_output:
        state.scanner = gv.StreamScanner(ctx.form, ctx.hipaa)
    if ctx.cache_key is not None:
        state.collector = rc.Collector(ctx.form)
    event: bytes | None = first
    relayed = len(first)
    try:
        while event is not None:
            forwarded = _filter(event, state, ctx, model)
            if forwarded is not None:  # the event keeps its own line ends
                await send(out, forwarded + sse.SEPARATOR, request, limits.write_seconds)
            if state.done:
                break
            async with asyncio.timeout(policy.stream_idle_seconds):
                event = await anext(events, None)
            if event is not None:
                relayed += len(event)
                if relayed > limits.max_bytes:
                    raise sse.BadStream("too_large", f"the upstream stream exceeds {limits.max_bytes} bytes")
        if not state.done:
            raise aiohttp.ClientPayloadError("upstream closed the stream before [DONE]")
    except ClientGone as exc:
        ctx.status = 499  # the client went away or stopped reading; nothing to tell it
        if exc.timed_out:
            ctx.error_code = "client_write_timeout"
        ctx.committed_open = False
        log.info("client gone mid-stream", extra={"request_id": ctx.request_id, "detail": str(exc)})
        ctx.chunks = state.events
        return out
    except Exception as exc:
        if request.transport is None or request.transport.is_closing():
            ctx.status = 499  # the client went away; nothing to tell it (charged: ctx.relayed_out)
            ctx.committed_open = False
            ctx.chunks = state.events
            return out
        kind, message = _stream_failure(exc)
        if kind == "internal":
            log.exception("gateway error mid-stream", extra={"request_id": ctx.request_id})
        else:
            m.UPSTREAM_ERRORS.labels(model.name, model.tier, kind).inc()
            health.get(model.id).record_failure(policy.breaker_failures)
            log.warning(
                "stream broke after it started",
                extra={"request_id": ctx.request_id, "model": model.name, "kind": kind, "detail": str(exc)},
            )
        ctx.chunks = state.events
        status, code = (500, "internal_error") if kind == "internal" else (502, "upstream_stream_error")
        await end_in_band(out, ctx, status, code, message, limits.write_seconds)
        return out
    ctx.chunks = state.events
    try:
        await send(out, b"", request, limits.write_seconds, last=True)
    except ClientGone as exc:
        ctx.status = 499
        if exc.timed_out:
            ctx.error_code = "client_write_timeout"
    ctx.committed_open = False
    if state.scanner is not None:
        count_output(ctx, state.scanner.findings)
    if state.collector is not None and ctx.status == 200 and ctx.cache_key is not None:
        stored = state.collector.result()
        if stored is not None:
            await cache.put(ctx.cache_key, rc.Entry(model.name, ctx.tier, stored), ctx.cache_ttl)
    return out
