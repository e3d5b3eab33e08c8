"""The gateway's HTTP application: wiring, the small endpoints and the completion path.

Why aiohttp for both sides: one event loop serves clients and holds pooled keep-alive
connections to every upstream (one `ClientSession`, so connections are reused per host), and
aiohttp streams SSE in both directions without buffering. Each worker process runs one of
these; `--workers N` binds N of them to one port with SO_REUSEPORT (see `main.py`).

Per request (`completion`): authenticate (sha256 of the bearer key, constant-time compare),
parse and check the body, route (ordered candidates, router.py), govern (governance.py),
reserve limits (admission.py), answer from the cache (responsecache.py) or try candidates in
order until one answers (upstream.py, relay.py), settle limits to reported usage, record
metrics and one audit line (accounting.py). Everything the request carries travels in one
`Ctx` (context.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from llmplatform.contract.keys import hash_api_key
from llmplatform.gateway import cache as rc
from llmplatform.gateway import governance as gv
from llmplatform.gateway import metrics as m
from llmplatform.gateway import responsecache
from llmplatform.gateway.accounting import Recorder
from llmplatform.gateway.admission import Admission
from llmplatform.gateway.audit import AuditSink, hash_stream, response_sha256
from llmplatform.gateway.bodies import check_content_type, check_request, parse_body
from llmplatform.gateway.compiled import Compiled, Key, Model, compile_config
from llmplatform.gateway.context import Ctx, new_request_id
from llmplatform.gateway.errors import GatewayError, error_body, http_error_code
from llmplatform.gateway.health import HealthBook
from llmplatform.gateway.router import Candidate, candidates, worst_case_output
from llmplatform.gateway.source import ConfigSource
from llmplatform.gateway.tokens import prompt_tokens
from llmplatform.gateway.upstream import Upstream

log = logging.getLogger("llmplatform.gateway")

DEFAULT_MAX_BODY = 10 * 1024 * 1024
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions", "/v1/embeddings": "embeddings"}


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


def json_error(exc: GatewayError, extra: dict[str, str] | None = None) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers={**exc.headers, **(extra or {})})


def _allow(exc: web.HTTPException) -> dict[str, str]:
    """A 405 keeps the Allow header aiohttp computed."""
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


class Gateway:
    def __init__(self, source: ConfigSource, settings: Settings) -> None:
        self.source = source
        self.settings = settings
        self.compiled: Compiled | None = None
        self._fingerprint: object = None
        self.health = HealthBook()
        self.admission = Admission(settings.redis_url, settings.redis_failure_mode)
        self.audit = AuditSink(
            settings.audit_log,
            max_bytes=settings.audit_log_max_bytes,
            keep=settings.audit_log_keep,
            fsync_seconds=settings.audit_fsync_seconds,
        )
        self.recorder = Recorder(self.audit)
        self.cache: rc.LocalCache | rc.RedisCache = (
            rc.RedisCache(settings.redis_url) if settings.redis_url else rc.LocalCache()
        )
        self.upstream = Upstream(self.health, self.cache)
        self._tasks: list[asyncio.Task[None]] = []

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

    async def on_startup(self, app: web.Application) -> None:
        self.upstream.start()
        self.reload()
        self._tasks.append(asyncio.create_task(self._reload_loop()))
        redis_task = await self.admission.start()
        if redis_task is not None:
            self._tasks.append(redis_task)

    async def on_cleanup(self, app: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await self.upstream.close()
        await self.admission.close()
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
            body = error_body(exc.status, exc.reason, code=http_error_code(exc.status))
            return web.json_response(body, status=exc.status, headers=_allow(exc))
        except Exception:
            log.exception("unhandled error", extra={"request_id": request.headers.get("x-request-id")})
            return web.json_response(error_body(500, "internal gateway error"), status=500)

    # -- small endpoints -------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.compiled is not None
        body = {
            "ready": ready and not self.admission.refusing(),
            "config": self.compiled.content_hash if self.compiled else None,
            "limiter": self.admission.state(),
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
        return web.json_response(await self.admission.usage(key.tenant))

    # -- the completion path ---------------------------------------------------------------

    async def completion(self, request: web.Request) -> web.StreamResponse:
        ctx = Ctx(
            request_id=request.headers.get("x-request-id", "")[:128] or new_request_id(),
            endpoint=ENDPOINTS[request.path],
            start=time.perf_counter(),
            http=request,
        )
        response: web.StreamResponse | None = None
        try:
            response = await self._complete(ctx)
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
            self.recorder.record(ctx)
        return response

    async def _read_body(self, ctx: Ctx) -> dict[str, Any]:
        request = ctx.http
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

    async def _complete(self, ctx: Ctx) -> web.StreamResponse:
        request = ctx.http
        key = self.authenticate(request)
        compiled = self.compiled
        assert compiled is not None
        tenant = key.tenant
        ctx.tenant, ctx.key, ctx.user, ctx.policy = tenant.id, key.name, key.user, tenant.policy
        if key.role not in gv.ROLE_CEILING:
            m.GOVERNANCE_DENIED.labels(tenant.id, "role").inc()
            gv.check_role(key.role)
        ctx.body = body = await self._read_body(ctx)
        requested, max_tokens, ctx.stream = check_request(body, ctx.endpoint)
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
        ctx.prompt = prompt = prompt_tokens(body, ctx.endpoint)
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
        cands = self._govern(ctx, key, requested, cands)
        assert ctx.extra is not None

        outputs = [(c.model, worst_case_output(c.model, prompt, max_tokens, ctx.endpoint)) for c in cands]
        worst_tokens = prompt + max(out for _, out in outputs)
        worst_cost = max(model.cost(prompt, out) for model, out in outputs)
        limiter, charges = await self.admission.reserve(tenant, ctx.user, worst_tokens, worst_cost, ctx.extra)
        try:
            cached = await responsecache.lookup(
                ctx, requested, tier_header, cands, self.cache, compiled.models
            )
            if cached is not None:
                return cached
            response = await self.upstream.attempts(ctx, cands)
            await responsecache.store(ctx, response, self.cache)
            return response
        finally:
            await self.admission.settle(limiter, charges, ctx)

    def _govern(self, ctx: Ctx, key: Key, requested: str, cands: list[Candidate]) -> list[Candidate]:
        """Classify the request and keep the candidates that may receive it (see governance.py);
        sets the redacted body by model id for those that get the copy, and the classification
        header."""
        tenant = key.tenant
        found = gv.scan(ctx.body, ctx.endpoint, tenant.governance.hipaa)
        ctx.classification, ctx.findings = found.classification, found.findings
        ctx.hipaa = tenant.governance.hipaa
        ctx.scan_output = tenant.policy.governance.output_scanning
        for kind, n in found.findings.items():
            m.PII_FINDINGS.labels(tenant.id, kind, "request").inc(n)
        ctx.extra = extra = {"x-llmplatform-data-classification": found.classification}
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
        ctx.copies = {r.cand.model.id: found.redacted()[0] for r in routes if r.redacted}
        return [r.cand for r in routes]
