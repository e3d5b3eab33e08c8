"""The gateway's HTTP server: auth, routing, limits, the upstream call, metrics and audit.

Why aiohttp for both sides: one event loop serves clients and holds pooled keep-alive
connections to every upstream (one `ClientSession`, so connections are reused per host), and
aiohttp streams SSE in both directions without buffering. Each worker process runs one of
these; `--workers N` binds N of them to one port with SO_REUSEPORT (see `main.py`).

Per request: authenticate (sha256 of the bearer key, constant-time compare), parse and check
the body, route (ordered candidates), reserve limits, try candidates in order until one
answers, settle limits to reported usage, record metrics and one audit line. A stream is
committed to the client only once the upstream has sent its first event, so failures before
that still fall back; after it, an error is sent in-band and never retried.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import itertools
import json
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from llmplatform.contract.keys import hash_api_key
from llmplatform.contract.usage import MICRO
from llmplatform.gateway import anthropic
from llmplatform.gateway import cache as rc
from llmplatform.gateway import governance as gv
from llmplatform.gateway import metrics as m
from llmplatform.gateway.audit import AuditSink, hash_stream, request_record, response_sha256
from llmplatform.gateway.bodies import check_content_type, check_shape, parse_body
from llmplatform.gateway.compiled import Compiled, Key, Model, Policy, compile_config
from llmplatform.gateway.errors import GatewayError, error_body
from llmplatform.gateway.health import HealthBook
from llmplatform.gateway.limits import Charge, LocalLimiter, RedisLimiter, RedisUnavailable, plan
from llmplatform.gateway.router import Candidate, candidates, worst_case_output
from llmplatform.gateway.source import ConfigSource
from llmplatform.gateway.tokens import prompt_tokens

log = logging.getLogger("llmplatform.gateway")

DEFAULT_MAX_BODY = 10 * 1024 * 1024
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}
REQUIRED = {"chat": "messages", "completions": "prompt", "embeddings": "input"}
"""The field each endpoint's body must have."""
USAGE_RE = re.compile(rb'"usage":\s*\{')
REDIS_FAILURE_MODES = ("local", "refuse")


@dataclass
class Settings:
    max_body_bytes: int = DEFAULT_MAX_BODY
    redis_url: str | None = None
    redis_failure_mode: str = "local"
    """`local`: when Redis is unreachable each replica enforces the limits on its own;
    `refuse`: answer 503 (and /readyz fails) until Redis is back."""
    reload_interval: float = 1.0
    audit_log: str | None = None
    audit_log_max_bytes: int = 0
    audit_log_keep: int = 10
    audit_fsync_seconds: float = 1.0


@dataclass(slots=True)
class Ctx:
    """What one request did, for metrics, audit and logs (slots: one per request, and read
    and written some hundred times in it)."""

    request_id: str
    endpoint: str
    start: float
    tenant: str = "none"
    user: str | None = None
    key: str | None = None
    model: str = "none"
    tier: str = "none"
    fallback_level: int = 0
    status: int = 200
    error_code: str | None = None
    use_case: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    usage_reported: bool = False
    cost: float = 0.0
    first_chunk: float | None = None
    first_chunk_at: float | None = None
    chunks: int = 0
    served: Model | None = None
    request_sha256: str | None = None
    """SHA-256 of the raw request body (None when it was not read: 401, 413)."""
    response_sha256: str | None = None
    classification: str | None = None
    """The request's class; None when it was refused before its content was scanned."""
    findings: dict[str, int] = field(default_factory=dict)
    """PII finding type -> count in the request."""
    redacted: bool = False
    """The request that left the gateway was the redacted copy."""
    cache: str | None = None
    """`hit` or `miss` when the response cache applies to the request."""
    cache_key: str | None = None
    cache_ttl: int = 0
    scan_output: bool = False
    hipaa: bool = False


@dataclass
class Failure:
    kind: str
    """`status`, `timeout` or `connect` (refused, reset or dropped)."""
    status: int = 0
    body: bytes = b""
    detail: str = ""


@dataclass
class StreamState:
    client_usage: bool
    usage: dict[str, Any] | None = None
    done: bool = False
    events: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    scanner: gv.StreamScanner | None = None
    collector: rc.Collector | None = None


def duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* format: `1s`, `6m0s`, `1h2m3s`."""
    s = max(0, math.ceil(seconds))
    h, rest = divmod(s, 3600)
    mins, secs = divmod(rest, 60)
    if h:
        return f"{h}h{mins}m{secs}s"
    if mins:
        return f"{mins}m{secs}s"
    return f"{secs}s"


def ratelimit_headers(charges: list[Charge], values: list[int]) -> dict[str, str]:
    """x-ratelimit-* for the tightest limited request counter and token counter (the first
    one on a tie), found in one pass over the request's counters."""
    tightest: dict[str, tuple[int, Charge]] = {}
    for c, v in zip(charges, values, strict=False):
        if c.limit >= 0 and c.metric != "usd":
            best = tightest.get(c.metric)
            if best is None or c.limit - v < best[0]:
                tightest[c.metric] = (c.limit - v, c)
    headers: dict[str, str] = {}
    for metric, suffix in (("req", "requests"), ("tok", "tokens")):
        best = tightest.get(metric)
        if best is not None:
            headers[f"x-ratelimit-limit-{suffix}"] = str(best[1].limit)
            headers[f"x-ratelimit-remaining-{suffix}"] = str(max(0, best[0]))
            headers[f"x-ratelimit-reset-{suffix}"] = duration(best[1].reset_seconds)
    return headers


@functools.lru_cache(maxsize=256)
def client_timeout(connect: float, total: float | None) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total, sock_connect=connect)


_RID_PREFIX = os.urandom(6).hex()
_rid_counter = itertools.count(1)


def new_request_id() -> str:
    """A request id unique across processes (random per-process prefix) without a syscall or a
    UUID object per request."""
    return f"{_RID_PREFIX}{next(_rid_counter):010x}"


def json_error(exc: GatewayError, extra: dict[str, str] | None = None) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers={**exc.headers, **(extra or {})})


class Gateway:
    def __init__(self, source: ConfigSource, settings: Settings) -> None:
        self.source = source
        self.settings = settings
        self.compiled: Compiled | None = None
        self._fingerprint: object = None
        self.health = HealthBook()
        self.local = LocalLimiter()
        self.redis = RedisLimiter(settings.redis_url) if settings.redis_url else None
        self.redis_ok = self.redis is not None
        self.audit = AuditSink(
            settings.audit_log,
            max_bytes=settings.audit_log_max_bytes,
            keep=settings.audit_log_keep,
            fsync_seconds=settings.audit_fsync_seconds,
        )
        self.cache: rc.LocalCache | rc.RedisCache = (
            rc.RedisCache(settings.redis_url) if settings.redis_url else rc.LocalCache()
        )
        self.session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._children: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        self._requests: dict[tuple[str, str, str, str, int], Any] = {}

    # -- config ----------------------------------------------------------------------------

    def reload(self) -> bool:
        """Load the source if it changed. Returns True when a new config now serves; a
        config that fails to load is logged and counted, and the previous one keeps serving."""
        try:
            fingerprint = self.source.fingerprint()
        except OSError as exc:
            log.error("config reload: cannot stat %s: %s", self.source.describe(), exc)
            m.CONFIG_RELOADS.labels("rejected").inc()
            return False
        if fingerprint == self._fingerprint:
            return False
        try:
            compiled = compile_config(*self.source.load())
        except Exception as exc:  # any failure to parse or validate keeps the old config
            self._fingerprint = fingerprint
            log.error("config rejected, previous config keeps serving: %s: %s", self.source.describe(), exc)
            m.CONFIG_RELOADS.labels("rejected").inc()
            return False
        self._fingerprint = fingerprint
        if self.compiled is not None and compiled.content_hash == self.compiled.content_hash:
            return False
        self.compiled = compiled
        m.CONFIG_RELOADS.labels("loaded").inc()
        m.CONFIG_LOADED.set(1)
        log.info(
            "config loaded",
            extra={
                "content_hash": compiled.content_hash,
                "tenants": len(compiled.tenants),
                "keys": len(compiled.keys),
            },
        )
        return True

    async def _reload_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            await loop.run_in_executor(None, self.reload)

    async def _redis_loop(self) -> None:
        assert self.redis is not None
        while True:
            ok = await self.redis.ping()
            if ok != self.redis_ok:
                log.warning("redis %s", "reachable again" if ok else "unreachable")
            self.redis_ok = ok
            m.REDIS_UP.set(1 if ok else 0)
            await asyncio.sleep(1.0)

    async def on_startup(self, app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=60)
        self.session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )
        self.reload()
        self._tasks.append(asyncio.create_task(self._reload_loop()))
        if self.redis is not None:
            self.redis_ok = await self.redis.ping()
            m.REDIS_UP.set(1 if self.redis_ok else 0)
            self._tasks.append(asyncio.create_task(self._redis_loop()))

    async def on_cleanup(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        if self.session is not None:
            await self.session.close()
        if self.redis is not None:
            await self.redis.close()
        await self.cache.close()
        self.audit.close()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes, middlewares=[self._errors])
        for path in ENDPOINTS:
            app.router.add_post(path, self.completion)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/llmplatform/usage", self.usage)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.on_response_prepare.append(hash_stream)
        app.on_startup.append(self.on_startup)
        app.on_cleanup.append(self.on_cleanup)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """OpenAI-style bodies for everything, including aiohttp's own 404/405."""
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except GatewayError as exc:
            return json_error(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return web.json_response(error_body(exc.status, exc.reason), status=exc.status)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request.headers.get("x-request-id")})
            return web.json_response(error_body(500, "internal gateway error"), status=500)

    # -- small endpoints -------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    def limiter_state(self) -> str:
        if self.redis is None:
            return "local"
        return "redis" if self.redis_ok else f"redis unreachable ({self.settings.redis_failure_mode})"

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.compiled is not None
        refusing = (
            self.redis is not None and not self.redis_ok and self.settings.redis_failure_mode == "refuse"
        )
        body = {
            "ready": ready and not refusing,
            "config": self.compiled.content_hash if self.compiled else None,
            "limiter": self.limiter_state(),
        }
        return web.json_response(body, status=200 if body["ready"] else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        for model_id, health in self.health.items():
            model = self.compiled.models.get(model_id) if self.compiled else None
            if model is not None:
                m.CIRCUIT_STATE.labels(model.name, model.tier).set(health.state)
        return web.Response(body=m.exposition(), content_type="text/plain", charset="utf-8")

    def authenticate(self, request: web.Request) -> Key:
        compiled = self.compiled
        if compiled is None:
            raise GatewayError(503, "the gateway has no valid config yet", code="not_ready")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GatewayError(
                401, "Missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        digest = hash_api_key(token)
        key = compiled.keys.get(digest)
        # The lookup is by a SHA-256 of the secret, which leaks nothing through timing; the
        # compare re-checks the full digest in constant time anyway.
        if key is None or not hmac.compare_digest(key.sha256, digest):
            raise GatewayError(401, "Incorrect API key provided", code="invalid_api_key")
        return key

    async def models(self, request: web.Request) -> web.Response:
        key = self.authenticate(request)
        tenant = key.tenant
        seen: dict[str, Model] = {}
        for tier, tier_models in tenant.policy.tiers.items():
            if tier in tenant.allowed_tiers:
                for model in tier_models:
                    seen.setdefault(model.name, model)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": f"llmplatform:{mod.tier}"}
            for name, mod in sorted(seen.items())
        ]
        return web.json_response({"object": "list", "data": data})

    async def usage(self, request: web.Request) -> web.Response:
        """The caller's tenant's counters (requests this minute, tokens today, cost this month)."""
        key = self.authenticate(request)
        tenant = key.tenant
        charges = plan(tenant.id, tenant.limits, None, None, 0, 0.0)
        wanted = {
            "requests_per_minute": "requestsThisMinute",
            "tokens_per_day": "tokensToday",
            "cost_per_month_usd": "costThisMonthUSD",
        }
        picked = [c for c in charges if c.field in wanted]
        limiter = self.redis if self.redis is not None and self.redis_ok else self.local
        try:
            values = await limiter.read([c.key for c in picked])
        except RedisUnavailable:
            values = await self.local.read([c.key for c in picked])
        body: dict[str, Any] = {"tenant": tenant.id, "limiter": self.limiter_state()}
        for c, v in zip(picked, values, strict=True):
            body[wanted[c.field]] = v / MICRO if c.metric == "usd" else v
        return web.json_response(body)

    # -- the completion path ---------------------------------------------------------------

    async def completion(self, request: web.Request) -> web.StreamResponse:
        endpoint = ENDPOINTS[request.path]
        ctx = Ctx(
            request_id=request.headers.get("x-request-id", "")[:128] or new_request_id(),
            endpoint=endpoint,
            start=time.perf_counter(),
        )
        response: web.StreamResponse | None = None
        try:
            response = await self._complete(request, ctx)
        except GatewayError as exc:
            ctx.status, ctx.error_code = exc.status, exc.code
            exc.headers.setdefault("x-request-id", ctx.request_id)
            response = json_error(exc)
        except Exception:  # a bug: still one answer and one audit record that says so
            log.exception("unhandled error", extra={"request_id": ctx.request_id})
            ctx.status, ctx.error_code = 500, "internal_error"
            body = error_body(500, "internal gateway error", code="internal_error")
            response = web.json_response(body, status=500, headers={"x-request-id": ctx.request_id})
        finally:  # exactly one record per request, whatever happened (499: cancelled)
            if response is None:
                ctx.status = 499
            ctx.response_sha256 = response_sha256(response)
            self._record(ctx)
        return response

    async def _read_body(self, request: web.Request, ctx: Ctx) -> dict[str, Any]:
        check_content_type(request.headers.get("Content-Type", ""))
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise GatewayError(413, f"request body exceeds {limit} bytes", code="request_too_large")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise GatewayError(413, f"request body exceeds {limit} bytes", code="request_too_large") from exc
        ctx.request_sha256 = hashlib.sha256(raw).hexdigest()
        return parse_body(raw)

    @staticmethod
    def _check(body: dict[str, Any], endpoint: str) -> tuple[str, int | None, bool]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise GatewayError(
                400, "you must provide a model parameter", code="invalid_request", param="model"
            )
        required = REQUIRED[endpoint]
        value = body.get(required)
        if value is None or (endpoint == "chat" and not isinstance(value, list)):
            raise GatewayError(
                400, f"'{required}' is a required property", code="invalid_request", param=required
            )
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (
            not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
        ):
            raise GatewayError(
                400, "max_tokens must be a positive integer", code="invalid_request", param="max_tokens"
            )
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise GatewayError(400, "stream must be a boolean", code="invalid_request", param="stream")
        if body.get("stream_options") is not None and not isinstance(body["stream_options"], dict):
            raise GatewayError(
                400, "stream_options must be an object", code="invalid_request", param="stream_options"
            )
        if endpoint == "embeddings" and stream:
            raise GatewayError(400, "embeddings cannot be streamed", code="invalid_request", param="stream")
        return model, max_tokens, stream

    async def _reserve(self, charges: list[Charge]) -> tuple[LocalLimiter | RedisLimiter, Any, list[int]]:
        if self.redis is not None and self.redis_ok:
            try:
                denial, values = await self.redis.reserve(charges)
                return self.redis, denial, values
            except RedisUnavailable as exc:
                log.warning(
                    "redis unreachable, limits follow redis failure mode %s: %s",
                    self.settings.redis_failure_mode,
                    exc,
                )
                self.redis_ok = False
                m.REDIS_UP.set(0)
        if self.redis is not None:
            if self.settings.redis_failure_mode == "refuse":
                raise GatewayError(
                    503, "the shared rate-limit store is unreachable", code="limits_unavailable"
                )
            m.LIMITER_DEGRADED.inc()
        denial, values = await self.local.reserve(charges)
        return self.local, denial, values

    async def _complete(self, request: web.Request, ctx: Ctx) -> web.StreamResponse:
        key = self.authenticate(request)
        compiled = self.compiled
        assert compiled is not None
        tenant = key.tenant
        ctx.tenant, ctx.key, ctx.user = tenant.id, key.name, key.user
        if key.role not in gv.ROLE_CEILING:
            m.GOVERNANCE_DENIED.labels(tenant.id, "role").inc()
            gv.check_role(key.role)
        body = await self._read_body(request, ctx)
        requested, max_tokens, stream = self._check(body, ctx.endpoint)
        check_shape(body, ctx.endpoint)
        if isinstance(body.get("user"), str) and body["user"]:
            ctx.user = body["user"]
        priority = 5
        if "x-llm-priority" in request.headers:
            try:
                priority = int(request.headers["x-llm-priority"])
            except ValueError:
                priority = 0
            if not 1 <= priority <= 10:
                raise GatewayError(
                    400, "X-LLM-Priority must be an integer from 1 to 10", code="invalid_request"
                )
        tier_header = request.headers.get("x-llm-tier")
        ctx.use_case = request.headers.get("x-llm-use-case", "")[:64] or None  # audited, not a label
        prompt = prompt_tokens(body, ctx.endpoint)
        cands = candidates(
            tenant,
            requested,
            tier_header,
            ctx.endpoint,
            prompt,
            max_tokens,
            priority,
            self.health,
            compiled.models,
        )
        cands, copies, extra = self._govern(ctx, key, body, requested, cands)

        outputs = [(c.model, worst_case_output(c.model, prompt, max_tokens, ctx.endpoint)) for c in cands]
        worst_tokens = prompt + max(out for _, out in outputs)
        worst_cost = max(model.cost(prompt, out) for model, out in outputs)
        charges = plan(tenant.id, tenant.limits, ctx.user, tenant.user_limits, worst_tokens, worst_cost)
        limiter, denial, values = await self._reserve(charges)
        if denial is not None:
            c = denial.charge
            m.RATE_LIMITED.labels(tenant.id, c.scope, c.field).inc()
            headers = {"retry-after": str(denial.retry_after)}
            suffix = "requests" if c.metric == "req" else "tokens"
            if c.metric != "usd":
                headers.update(
                    {
                        f"x-ratelimit-limit-{suffix}": str(c.limit),
                        f"x-ratelimit-remaining-{suffix}": str(max(0, c.limit - denial.current)),
                        f"x-ratelimit-reset-{suffix}": duration(c.reset_seconds),
                    }
                )
            what = "budget" if c.metric == "usd" else "rate limit"
            raise GatewayError(
                429,
                f"{c.scope} {what} {c.field} reached; retry after {denial.retry_after}s",
                code="rate_limit_exceeded",
                headers=headers,
            )
        extra.update(ratelimit_headers(charges, values))
        try:
            cached = await self._cached(
                request, ctx, tenant.policy, body, requested, tier_header, cands, copies, extra
            )
            if cached is not None:
                return cached
            response = await self._attempts(request, ctx, body, stream, cands, tenant.policy, extra, copies)
            if ctx.cache_key is not None and type(response) is web.Response and response.status == 200:
                assert isinstance(response.body, bytes)
                await self.cache.put(
                    ctx.cache_key, rc.Entry(ctx.model, ctx.tier, response.body), ctx.cache_ttl
                )
            return response
        finally:
            await self._settle(limiter, charges, ctx, prompt)

    def _govern(
        self, ctx: Ctx, key: Key, body: dict[str, Any], requested: str, cands: list[Candidate]
    ) -> tuple[list[Candidate], dict[str, dict[str, Any]], dict[str, str]]:
        """Classify the request and keep the candidates that may receive it (see governance.py):
        the candidates, the redacted body by model id for those that get the copy, and the
        classification header."""
        tenant = key.tenant
        found = gv.scan(body, ctx.endpoint, tenant.governance.hipaa)
        ctx.classification, ctx.findings = found.classification, found.findings
        ctx.hipaa = tenant.governance.hipaa
        ctx.scan_output = tenant.policy.governance.output_scanning
        for kind, n in found.findings.items():
            m.PII_FINDINGS.labels(tenant.id, kind, "request").inc(n)
        extra = {"x-llmplatform-data-classification": found.classification}
        try:
            routes = gv.route(
                found,
                cands,
                tenant.policy.governance,
                tenant.governance,
                key.role,
                requested in tenant.policy.by_name,
            )
        except gv.GovernanceDenied as exc:
            m.GOVERNANCE_DENIED.labels(tenant.id, exc.reason).inc()
            exc.headers.update(extra)
            raise
        copies = {r.cand.model.id: found.redacted()[0] for r in routes if r.redacted}
        return [r.cand for r in routes], copies, extra

    async def _cached(
        self,
        request: web.Request,
        ctx: Ctx,
        policy: Policy,
        body: dict[str, Any],
        requested: str,
        tier_header: str | None,
        cands: list[Candidate],
        copies: dict[str, dict[str, Any]],
        extra: dict[str, str],
    ) -> web.StreamResponse | None:
        """The response from the cache when there is one; otherwise marks the request as a miss
        to be stored (see cache.py)."""
        if not rc.applies(policy.cache, body):
            return None
        named = policy.by_name.get(requested)
        if named is not None:
            target = f"model:{named.id}"
        else:
            target = f"tier:{tier_header or policy.default_tier if requested == 'auto' else requested}"
        if cands[0].model.id in copies:
            target += ":redacted"  # what left the gateway differs, so may the answer
        ctx.cache_key = rc.key(ctx.tenant, ctx.endpoint, target, body)
        ctx.cache_ttl = policy.cache.ttl_seconds
        entry = await self.cache.get(ctx.cache_key)
        if entry is None:
            ctx.cache = "miss"
            return None
        ctx.cache, ctx.cache_key = "hit", None
        ctx.model, ctx.tier = entry.model, entry.tier
        ctx.served = self.compiled.models.get(entry.model) if self.compiled else None
        ctx.redacted = cands[0].model.id in copies
        raw = entry.body
        if ctx.scan_output:
            raw = self._scan_json(ctx, raw)
        usage = rc.usage(raw)
        if usage is not None and ctx.served is not None:
            self._take_usage(ctx, ctx.served, usage)
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
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        out = web.StreamResponse(
            status=200, headers={**headers, "content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await out.prepare(request)
        await out.write(rc.as_stream(raw, ctx.endpoint, include_usage))
        await out.write_eof()
        return out

    def _scan_json(self, ctx: Ctx, raw: bytes) -> bytes:
        raw, found = gv.redact_response(raw, ctx.endpoint, ctx.hipaa)
        self._count_output(ctx, found)
        return raw

    @staticmethod
    def _count_output(ctx: Ctx, found: dict[str, int]) -> None:
        for kind, n in found.items():
            m.PII_FINDINGS.labels(ctx.tenant, kind, "response").inc(n)
        if found:
            m.REDACTED.labels(ctx.tenant, "response").inc()

    async def _settle(
        self, limiter: LocalLimiter | RedisLimiter, charges: list[Charge], ctx: Ctx, prompt: int
    ) -> None:
        if ctx.served is not None and not ctx.usage_reported:
            ctx.tokens_in, ctx.tokens_out = prompt, ctx.chunks  # no usage from upstream: our estimate
            ctx.cost = ctx.served.cost(ctx.tokens_in, ctx.tokens_out)
        used = {"req": 1, "tok": ctx.tokens_in + ctx.tokens_out, "usd": math.ceil(ctx.cost * MICRO)}
        deltas = [used[c.metric] - c.amount for c in charges]
        try:
            await limiter.settle(charges, deltas)
        except RedisUnavailable as exc:
            log.warning("could not settle usage in redis: %s", exc, extra={"request_id": ctx.request_id})

    async def _attempts(
        self,
        request: web.Request,
        ctx: Ctx,
        body: dict[str, Any],
        stream: bool,
        cands: list[Candidate],
        policy: Policy,
        extra: dict[str, str],
        copies: dict[str, dict[str, Any]] | None = None,
    ) -> web.StreamResponse:
        attempts = 0
        failures: list[tuple[Candidate, Failure]] = []
        for cand in cands:
            if attempts >= policy.max_attempts:
                break
            health = self.health.get(cand.model.id)
            if not health.allow(policy.breaker_open_seconds):
                continue
            if attempts:
                m.FALLBACKS.labels(ctx.tenant, cand.model.name, cand.tier).inc()
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
            try:
                result = await self._call(request, ctx, payload, stream, cand.model, policy, headers)
            except BaseException:
                health.release_trial()
                raise
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
                return self._passthrough(result, ctx, headers)
        if not failures:
            raise GatewayError(
                503,
                "no model is available for this request (circuit breakers open)",
                code="no_healthy_upstream",
                headers=extra,
            )
        summary = ", ".join(f"{c.model.name}: {f.status or f.kind}" for c, f in failures)
        headers = {**extra, "x-llmplatform-fallback-level": str(ctx.fallback_level)}
        if failures[-1][1].kind == "timeout":
            raise GatewayError(
                504, f"upstream timed out ({summary})", code="upstream_timeout", headers=headers
            )
        raise GatewayError(
            503, f"every candidate model failed ({summary})", code="upstream_unavailable", headers=headers
        )

    def _passthrough(self, failure: Failure, ctx: Ctx, headers: dict[str, str]) -> web.Response:
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
        try:
            parsed = json.loads(failure.body)
            ok = isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)
        except ValueError:
            ok = False
        body = failure.body if ok else json.dumps(error_body(failure.status, "upstream error")).encode()
        return web.Response(
            body=body, status=failure.status, content_type="application/json", headers=headers
        )

    def _upstream_request(
        self, ctx: Ctx, body: dict[str, Any], stream: bool, model: Model
    ) -> tuple[bytes, dict[str, str]]:
        if model.provider == "anthropic":
            upstream = anthropic.to_messages_request(body, model.upstream_model, model.max_output_tokens)
            return json.dumps(upstream).encode(), anthropic.headers(model.api_key, ctx.request_id)
        payload = dict(body)
        payload["model"] = model.upstream_model
        if stream:
            payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        headers = {"content-type": "application/json", "x-request-id": ctx.request_id}
        if model.api_key:
            headers["authorization"] = f"Bearer {model.api_key}"
        return json.dumps(payload).encode(), headers

    async def _call(
        self,
        request: web.Request,
        ctx: Ctx,
        body: dict[str, Any],
        stream: bool,
        model: Model,
        policy: Policy,
        headers: dict[str, str],
    ) -> web.StreamResponse | Failure:
        assert self.session is not None
        data, up_headers = self._upstream_request(ctx, body, stream, model)
        url = model.urls[ctx.endpoint]
        resp: aiohttp.ClientResponse | None = None
        try:
            try:
                if not stream:  # aiohttp's total timeout covers connect, headers and body
                    timeout = client_timeout(policy.connect_seconds, policy.request_seconds)
                    resp = await self.session.post(url, data=data, headers=up_headers, timeout=timeout)
                    raw = await resp.read()
                    if model.provider == "anthropic":
                        raw_or_failure = self._from_anthropic(resp.status, raw)
                        if isinstance(raw_or_failure, Failure):
                            return raw_or_failure
                        raw = raw_or_failure
                    elif resp.status != 200:
                        return Failure("status", resp.status, raw)
                    return self._json_response(raw, ctx, model, headers)
                # a stream gets requestSeconds to its first event, then streamIdleSeconds per event
                async with asyncio.timeout(policy.request_seconds):
                    timeout = client_timeout(policy.connect_seconds, None)
                    resp = await self.session.post(url, data=data, headers=up_headers, timeout=timeout)
                    if resp.status != 200:
                        raw = await resp.read()
                        if model.provider == "anthropic":
                            return Failure("status", *anthropic.error_from(resp.status, raw))
                        return Failure("status", resp.status, raw)
                    events = self._events(resp, ctx, model, policy)
                    first = await anext(events, None)
                    if first is None:
                        return Failure("connect", detail="stream ended before its first event")
            except anthropic.StreamFailed as exc:
                return Failure("status", exc.status, exc.body, "error event before the stream started")
            except aiohttp.ConnectionTimeoutError as exc:
                return Failure("connect", detail=f"connect timeout: {exc}")
            except TimeoutError:
                return Failure("timeout", detail=f"no answer within {policy.request_seconds}s")
            except (aiohttp.ClientError, OSError) as exc:
                return Failure("connect", detail=f"{type(exc).__name__}: {exc}")
            return await self._relay(request, events, first, ctx, body, model, policy, headers)
        finally:
            if resp is not None:
                resp.release()

    @staticmethod
    def _from_anthropic(status: int, raw: bytes) -> bytes | Failure:
        """An Anthropic answer as an OpenAI chat.completion body, or the Failure it stands for."""
        if status != 200:
            return Failure("status", *anthropic.error_from(status, raw))
        try:
            return json.dumps(anthropic.to_chat_completion(json.loads(raw), int(time.time()))).encode()
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            body = json.dumps(error_body(502, "anthropic upstream sent an unreadable message")).encode()
            return Failure("status", 502, body, f"unreadable anthropic message: {exc}")

    def _json_response(self, raw: bytes, ctx: Ctx, model: Model, headers: dict[str, str]) -> web.Response:
        try:
            usage = json.loads(raw).get("usage")
        except (ValueError, AttributeError):
            usage = None
        self._take_usage(ctx, model, usage)
        ctx.served = model
        if ctx.scan_output:
            raw = self._scan_json(ctx, raw)
        return web.Response(body=raw, content_type="application/json", headers=headers)

    @staticmethod
    def _take_usage(ctx: Ctx, model: Model, usage: Any) -> None:
        if isinstance(usage, dict):
            ctx.tokens_in = int(usage.get("prompt_tokens") or 0)
            ctx.tokens_out = int(usage.get("completion_tokens") or 0)
            ctx.cost = model.cost(ctx.tokens_in, ctx.tokens_out)
            ctx.usage_reported = True

    @staticmethod
    async def _event(resp: aiohttp.ClientResponse) -> bytes | None:
        """One SSE event (its lines, without the blank separator), or None at end of stream."""
        lines: list[bytes] = []
        while True:
            line = await resp.content.readline()
            if not line:
                return b"".join(lines) if lines else None
            if line in (b"\n", b"\r\n"):
                if lines:
                    return b"".join(lines)
                continue
            lines.append(line)

    async def _events(
        self, resp: aiohttp.ClientResponse, ctx: Ctx, model: Model, policy: Policy
    ) -> AsyncIterator[bytes]:
        """The upstream's SSE events in OpenAI form: as they come from an OpenAI-style upstream,
        translated (one Anthropic event may become zero or more) from an Anthropic one. An
        Anthropic `error` event mid-stream reaches the client in-band and counts as a failed
        stream, as a dropped connection does in `_relay`."""
        translator = anthropic.StreamTranslator(int(time.time())) if model.provider == "anthropic" else None
        while (event := await self._event(resp)) is not None:
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
                self.health.get(model.id).record_failure(policy.breaker_failures)
            for out in translated:
                yield out

    def _filter(self, event: bytes, state: StreamState, ctx: Ctx, model: Model) -> bytes | None:
        """Take usage from an event and decide whether the client sees it: the gateway always
        asks upstream for usage (to settle budgets) but only forwards the usage-only chunk
        when the client asked for it."""
        if event.startswith(b"data:") and event[5:].strip() == b"[DONE]":
            state.done = True
            if state.scanner is not None:
                last = state.scanner.finish()
                if last is not None:
                    return b"data: " + json.dumps(last).encode() + b"\n\n" + event
            return event
        state.events += 1
        if (state.scanner is not None or state.collector is not None) and event.startswith(b"data:"):
            event = self._inspect(event, state)
        if USAGE_RE.search(event) and event.startswith(b"data:"):
            try:
                chunk = json.loads(event[5:])
            except ValueError:
                return event
            self._take_usage(ctx, model, chunk.get("usage"))
            if not state.client_usage and not chunk.get("choices"):
                return None
        return event

    @staticmethod
    def _inspect(event: bytes, state: StreamState) -> bytes:
        """Feed a chunk to the cache collector and the output scanner (only when either is on:
        it costs a JSON parse per chunk)."""
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
            event = b"data: " + json.dumps(chunk).encode() + b"\n"
        if state.collector is not None:
            state.collector.feed(chunk)
        return event

    async def _relay(
        self,
        request: web.Request,
        events: AsyncIterator[bytes],
        first: bytes,
        ctx: Ctx,
        body: dict[str, Any],
        model: Model,
        policy: Policy,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        out = web.StreamResponse(
            status=200, headers={**headers, "content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await out.prepare(request)
        ctx.served = model
        ctx.first_chunk_at = time.perf_counter()
        ctx.first_chunk = ctx.first_chunk_at - ctx.start
        state = StreamState(client_usage=bool((body.get("stream_options") or {}).get("include_usage")))
        if ctx.scan_output:
            state.scanner = gv.StreamScanner(ctx.endpoint, ctx.hipaa)
        if ctx.cache_key is not None:
            state.collector = rc.Collector(ctx.endpoint)
        event: bytes | None = first
        try:
            while event is not None:
                forwarded = self._filter(event, state, ctx, model)
                if forwarded is not None:
                    await out.write(forwarded + b"\n")  # the event keeps its own line ends
                if state.done:
                    break
                async with asyncio.timeout(policy.stream_idle_seconds):
                    event = await anext(events, None)
            if not state.done:
                raise aiohttp.ClientPayloadError("upstream closed the stream before [DONE]")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            if request.transport is None or request.transport.is_closing():
                ctx.status = 499  # the client went away; nothing to tell it
                return out
            kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
            m.UPSTREAM_ERRORS.labels(model.name, model.tier, kind).inc()
            self.health.get(model.id).record_failure(policy.breaker_failures)
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
            await out.write(b"data: " + json.dumps(err).encode() + b"\n\ndata: [DONE]\n\n")
        ctx.chunks = state.events
        await out.write_eof()
        if state.scanner is not None:
            self._count_output(ctx, state.scanner.findings)
        if state.collector is not None and ctx.status == 200 and ctx.cache_key is not None:
            stored = state.collector.result()
            if stored is not None:
                await self.cache.put(ctx.cache_key, rc.Entry(model.name, ctx.tier, stored), ctx.cache_ttl)
        return out

    # -- accounting ------------------------------------------------------------------------

    def _record(self, ctx: Ctx) -> None:
        elapsed = time.perf_counter() - ctx.start
        labels = (ctx.tenant, ctx.model, ctx.tier, ctx.endpoint, ctx.status)
        requests = self._requests.get(labels)
        if requests is None:  # bounded: config values and HTTP status codes
            requests = self._requests[labels] = m.REQUESTS.labels(*labels[:4], str(ctx.status))
        requests.inc()
        if ctx.served is not None:
            key = (ctx.tenant, ctx.model, ctx.tier)
            children = self._children.get(key)
            if children is None:  # bounded: tenants x models x tiers of the config
                children = self._children[key] = (
                    m.LATENCY.labels(*key),
                    m.TOKENS.labels(*key, "in"),
                    m.TOKENS.labels(*key, "out"),
                    m.COST.labels(*key),
                    m.FIRST_CHUNK.labels(*key),
                )
            latency, tokens_in, tokens_out, cost, first_chunk = children
            latency.observe(elapsed)
            tokens_in.inc(ctx.tokens_in)
            tokens_out.inc(ctx.tokens_out)
            cost.inc(ctx.cost)
            if ctx.first_chunk is not None:
                first_chunk.observe(ctx.first_chunk)
            if ctx.cache is not None:
                (m.CACHE_HITS if ctx.cache == "hit" else m.CACHE_MISSES).labels(*key).inc()
            if ctx.redacted:
                m.REDACTED.labels(ctx.tenant, "request").inc()
        self.audit.write(request_record(ctx, elapsed))
