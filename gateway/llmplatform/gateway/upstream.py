"""Upstream attempts: try the candidates in order, with the policy's retries, timeouts and
circuit breakers, until one answers.

Why here: the fallback loop, one attempt's HTTP call and how a failure reaches the client are
one policy (docs/gateway.md, "Fallback"); the provider-specific parts are behind
`Model.adapter` (providers/) and the stream, once committed, is `relay.py`'s.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from llmplatform.gateway import cache as rc
from llmplatform.gateway import metrics as m
from llmplatform.gateway import sse
from llmplatform.gateway.accounting import answer_of, output_tokens, scan_json, take_usage
from llmplatform.gateway.compiled import Model
from llmplatform.gateway.context import Ctx
from llmplatform.gateway.errors import GatewayError, error_body, error_bytes
from llmplatform.gateway.health import HealthBook
from llmplatform.gateway.providers.base import Failure, StreamFailed
from llmplatform.gateway.relay import StreamLimits, openai_events, relay
from llmplatform.gateway.router import Candidate

log = logging.getLogger("llmplatform.gateway")


@functools.lru_cache(maxsize=256)
def client_timeout(connect: float, total: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, sock_connect=connect)


DEFAULT_MAX_UPSTREAM_BODY = 32 * 1024 * 1024
"""Largest upstream answer read (a JSON body, or all of a stream's events): room for a large
batch of embeddings, while a hostile or broken upstream cannot grow the gateway without bound."""
RETRY_AFTER_MAX = 64


class BodyTooLarge(Exception):
    pass


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or BodyTooLarge as soon as it is known to exceed `limit` bytes (from
    Content-Length before reading, else while reading): never more than `limit` in memory."""
    if resp.content_length is not None:
        if resp.content_length > limit:
            raise BodyTooLarge(f"Content-Length {resp.content_length} exceeds {limit} bytes")
        return await resp.read()  # the common case: a known, allowed length, read in one go
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(256 * 1024):
        buf += chunk
        if len(buf) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
    return bytes(buf)


def too_large(limit: int, detail: str) -> Failure:
    body = error_bytes(
        502,
        f"the upstream answer exceeds the gateway's limit of {limit} bytes",
        code="upstream_response_too_large",
    )
    return Failure("status", 502, body, f"upstream body too large: {detail}")


def redirected(resp: aiohttp.ClientResponse) -> Failure:
    """A 3xx from an upstream is an error, never followed: the model's URL is configuration, and
    following a redirect would send the request (and the provider key) somewhere else."""
    message = f"the upstream answered with a redirect (HTTP {resp.status}); redirects are not followed"
    return Failure("status", 502, error_bytes(502, message, code="upstream_redirect"), message)


def retry_after(resp: aiohttp.ClientResponse) -> str | None:
    """The upstream's Retry-After when it is well-formed (delta-seconds or an HTTP date)."""
    value = resp.headers.get("Retry-After", "").strip()
    if not value or len(value) > RETRY_AFTER_MAX or not value.isascii() or not value.isprintable():
        return None
    if value.isdigit():
        return value
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return value


def json_response(raw: bytes, ctx: Ctx, model: Model, headers: dict[str, str]) -> web.Response:
    """A complete OpenAI JSON answer to the client, its usage taken (and its PII redacted
    when output scanning is on)."""
    ctx.served = model
    answer = answer_of(raw)
    take_usage(ctx, model, answer.get("usage"))
    if not ctx.usage_reported:  # settlement charges the gateway's own count instead
        ctx.relayed_out = output_tokens(answer)
    if ctx.scan_output:
        raw = scan_json(ctx, raw)
    return web.Response(body=raw, content_type="application/json", headers=headers)


def passthrough(failure: Failure, ctx: Ctx, headers: dict[str, str]) -> web.Response:
    """An upstream error that the policy does not retry goes to the client as the upstream
    said it (OpenAI-shaped if it was not already)."""
    if failure.kind == "timeout":
        raise GatewayError(504, "upstream timed out", code="upstream_timeout", headers=headers)
    if failure.kind == "connect":
        raise GatewayError(
            503, f"upstream unreachable: {failure.detail}", code="upstream_unavailable", headers=headers
        )
    if failure.status in (401, 403):
        # The provider refused the platform's credentials, not the caller's: passing its 401
        # through would tell the caller that *their* key is wrong, which they cannot fix.
        log.error(
            "upstream %s refused the provider credentials (HTTP %d): check its apiKeySecretRef",
            ctx.model,
            failure.status,
        )
        raise GatewayError(
            502,
            f"the upstream of model '{ctx.model}' refused the gateway's provider credentials "
            f"(HTTP {failure.status}); the platform team must fix the model's API key",
            code="upstream_auth_failed",
            headers=headers,
        )
    ctx.status = failure.status
    if failure.status == 429 and failure.retry_after is not None:
        headers = {**headers, "retry-after": failure.retry_after}
    try:
        parsed = json.loads(failure.body)
        ok = isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)
    except ValueError:
        ok = False
    body = failure.body if ok else json.dumps(error_body(failure.status, "upstream error")).encode()
    return web.Response(body=body, status=failure.status, content_type="application/json", headers=headers)


class Upstream:
    """The HTTP client (one pooled session per worker) and the health of every model."""

    def __init__(
        self, health: HealthBook, cache: rc.LocalCache | rc.RedisCache, limits: StreamLimits
    ) -> None:
        self.health = health
        self.cache = cache
        self.limits = limits
        self.session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def attempts(self, ctx: Ctx, cands: list[Candidate]) -> web.StreamResponse:
        policy, extra, body, copies = ctx.policy, ctx.extra, ctx.body, ctx.copies
        assert policy is not None and extra is not None
        attempts = 0
        failures: list[tuple[Candidate, Failure]] = []
        for cand in cands:
            if attempts >= policy.max_attempts:
                break
            if cand.model.credential_problem is not None:
                # never sent without its key (the upstream's 401 would blame the caller, and a
                # keyless call may reach a provider that answers anyway): not an attempt, so
                # the next candidate is tried whatever the policy's retryOn says
                ctx.model, ctx.tier = cand.model.name, cand.tier
                failures.append((cand, Failure("credentials", 503, detail=cand.model.credential_problem)))
                m.UPSTREAM_ERRORS.labels(cand.model.name, cand.tier, "credentials").inc()
                continue
            health = self.health.get(cand.model.id)
            if not health.allow(policy.breaker_open_seconds):
                if ctx.trace is not None and ctx.trace.recording:
                    ctx.trace.event("llmplatform.circuit_open", {"llmplatform.model": cand.model.name})
                continue
            if attempts:
                m.FALLBACKS.labels(ctx.tenant, cand.model.name, cand.tier).inc()
                if ctx.trace is not None and ctx.trace.recording:
                    failed, failure = failures[-1]
                    ctx.trace.event(
                        "llmplatform.fallback",
                        {
                            "llmplatform.fallback_level": attempts,
                            "llmplatform.from_model": failed.model.name,
                            "llmplatform.to_model": cand.model.name,
                            "llmplatform.to_tier": cand.tier,
                            "error.type": str(failure.status) if failure.kind == "status" else failure.kind,
                        },
                    )
            ctx.fallback_level, ctx.model, ctx.tier = attempts, cand.model.name, cand.tier
            attempts += 1
            headers = {
                **extra,
                "x-request-id": ctx.request_id,
                "x-llmplatform-model": cand.model.name,
                "x-llmplatform-tier": cand.tier,
                "x-llmplatform-fallback-level": str(ctx.fallback_level),
            }
            payload = body
            if copies:
                payload = copies.get(cand.model.id, body)
                ctx.redacted = payload is not body
            headers["x-llmplatform-redacted"] = "true" if payload is not body else "false"
            if ctx.cache is not None:
                headers["x-llmplatform-cache"] = ctx.cache
            started = time.perf_counter()
            if ctx.trace is not None:
                ctx.trace.attempt_start(ctx, cand.model)
            try:
                result = await self._call(ctx, payload, cand.model, headers)
            except BaseException as exc:
                health.release_trial()
                if ctx.trace is not None:
                    ctx.trace.attempt_end(ctx, exc)
                raise
            if ctx.trace is not None:
                ctx.trace.attempt_end(ctx, result)
            if isinstance(result, web.StreamResponse):
                if ctx.status < 500:
                    # streams: time to the first chunk, so long answers do not read as slow models
                    end = ctx.first_chunk_at if ctx.first_chunk_at is not None else time.perf_counter()
                    health.record_success((end - started) * 1000)
                return result
            failures.append((cand, result))
            retryable = (
                (result.kind == "status" and result.status in policy.retry_statuses)
                or (result.kind == "timeout" and policy.retry_timeout)
                or (result.kind == "connect" and policy.retry_connect)
            )
            if result.kind != "status" or result.status >= 500:
                health.record_failure(policy.breaker_failures)
            else:
                health.release_trial()
            m.UPSTREAM_ERRORS.labels(
                cand.model.name, cand.tier, result.kind if result.kind != "status" else str(result.status)
            ).inc()
            log.warning(
                "upstream attempt failed",
                extra={
                    "request_id": ctx.request_id,
                    "model": cand.model.name,
                    "kind": result.kind,
                    "status": result.status,
                    "detail": result.detail,
                },
            )
            if not retryable:
                return passthrough(result, ctx, headers)
        if not failures:
            raise GatewayError(
                503,
                "no model is available for this request (circuit breakers open)",
                code="no_healthy_upstream",
                headers=extra,
            )
        headers = {**extra, "x-llmplatform-fallback-level": str(ctx.fallback_level)}
        if all(f.kind == "credentials" for _, f in failures):
            raise GatewayError(
                503,
                "; ".join(dict.fromkeys(f.detail for _, f in failures)),
                code="upstream_credentials_missing",
                headers=headers,
            )
        summary = ", ".join(
            f"{c.model.name}: {'credentials missing' if f.kind == 'credentials' else f.status or f.kind}"
            for c, f in failures
        )
        if failures[-1][1].kind == "timeout":
            raise GatewayError(
                504, f"upstream timed out ({summary})", code="upstream_timeout", headers=headers
            )
        raise GatewayError(
            503, f"every candidate model failed ({summary})", code="upstream_unavailable", headers=headers
        )

    async def _call(
        self, ctx: Ctx, body: dict[str, Any], model: Model, headers: dict[str, str]
    ) -> web.StreamResponse | Failure:
        """One attempt: the answer sent to the client, or the Failure that may fall back."""
        assert self.session is not None and ctx.policy is not None
        policy, stream = ctx.policy, ctx.stream
        if ctx.dialect is not None:  # a client API of its own (the Responses API)
            adapter, url = ctx.dialect.adapter(model)
        else:
            adapter, url = model.adapter, model.urls[ctx.endpoint]
        data, up_headers = adapter.build_request(body, model, stream, ctx.request_id)
        tls = model.upstream_tls
        if tls.error is not None:  # its CA bundle is unusable: never fall back to weaker checks
            return Failure("connect", detail=tls.error)
        if ctx.trace is not None:
            ctx.trace.inject(up_headers)

        session = self.session

        def post(timeout: aiohttp.ClientTimeout) -> Any:
            """The one upstream POST of this attempt: never following redirects, verified TLS."""
            return session.post(
                url, data=data, headers=up_headers, timeout=timeout, allow_redirects=False, ssl=tls.ssl
            )

        resp: aiohttp.ClientResponse | None = None
        try:
            try:
                if not stream:  # aiohttp's total timeout covers connect, headers and body
                    resp = await post(client_timeout(policy.connect_seconds, policy.request_seconds))
                    if 300 <= resp.status < 400:
                        return redirected(resp)
                    parsed = adapter.parse_response(
                        resp.status, await read_capped(resp, self.limits.max_bytes)
                    )
                    if isinstance(parsed, Failure):
                        parsed.retry_after = retry_after(resp)
                        return parsed
                    return json_response(parsed, ctx, model, headers)
                # a stream gets requestSeconds to its first event, then streamIdleSeconds per event
                async with asyncio.timeout(policy.request_seconds):
                    resp = await post(client_timeout(policy.connect_seconds, None))
                    if 300 <= resp.status < 400:
                        return redirected(resp)
                    if resp.status != 200:
                        failure = adapter.stream_error(
                            resp.status, await read_capped(resp, self.limits.max_bytes)
                        )
                        failure.retry_after = retry_after(resp)
                        return failure
                    events = openai_events(resp, ctx, model, self.health, adapter)
                    first = await anext(events, None)
                    if first is None:
                        return Failure("connect", detail="stream ended before its first event")
            except StreamFailed as exc:
                return Failure("status", exc.status, exc.body, "error event before the stream started")
            except BodyTooLarge as exc:
                return too_large(self.limits.max_bytes, str(exc))
            except sse.BadStream as exc:  # before anything reached the client: may fall back
                code = "upstream_response_too_large" if exc.reason == "too_large" else "upstream_stream_error"
                message = "the upstream sent a stream the gateway cannot relay (malformed or too large)"
                return Failure("status", 502, error_bytes(502, message, code=code), str(exc))
            except aiohttp.ConnectionTimeoutError as exc:
                return Failure("connect", detail=f"connect timeout: {exc}")
            except TimeoutError:
                return Failure("timeout", detail=f"no answer within {policy.request_seconds}s")
            except (aiohttp.ClientError, OSError) as exc:
                return Failure("connect", detail=f"{type(exc).__name__}: {exc}")
            return await relay(events, first, ctx, model, headers, self.health, self.cache, self.limits)
        finally:
            if resp is not None:
                resp.release()
