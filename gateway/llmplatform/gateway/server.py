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

import aiohttp
from aiohttp import web

from llmplatform.contract.keys import hash_api_key
from llmplatform.gateway import cache as rc
from llmplatform.gateway import governance as gv
from llmplatform.gateway import messagesapi, reloadguard, responsecache, responses, tracing, worstcase
from llmplatform.gateway import metrics as m
from llmplatform.gateway.accounting import Recorder
from llmplatform.gateway.admission import Admission
from llmplatform.gateway.audit import AuditSink, hash_stream, response_sha256
from llmplatform.gateway.bodies import check_content_type, check_request, parse_body
from llmplatform.gateway.compiled import Compiled, Key, Model, compile_config
from llmplatform.gateway.connection import DEFAULT_BODY_SECONDS
from llmplatform.gateway.context import Ctx, Dialect, client_request_id, new_request_id
from llmplatform.gateway.errors import GatewayError, error_body, http_error_code
from llmplatform.gateway.health import HealthBook
from llmplatform.gateway.relay import StreamLimits, end_in_band
from llmplatform.gateway.router import Candidate, candidates, worst_case_output
from llmplatform.gateway.source import ConfigSource
from llmplatform.gateway.tokens import prompt_tokens
from llmplatform.gateway.upstream import DEFAULT_MAX_UPSTREAM_BODY, Upstream

log = logging.getLogger("llmplatform.gateway")

DEFAULT_MAX_BODY = 10 * 1024 * 1024
ENDPOINTS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    messagesapi.PATH: "messages",
}
"""Path -> the client API (`Ctx.endpoint`; the audit record's `api`)."""
DIALECTS: dict[str, Dialect] = {"responses": responses.DIALECT, "messages": messagesapi.DIALECT}
"""Endpoints whose client API is not an OpenAI form the path carries itself (Ctx.dialect)."""


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
    audit_log_keep: int = 0
    audit_fsync_seconds: float = 1.0
    audit_log_rotate_seconds: float = 86400.0
    max_upstream_body_bytes: int = DEFAULT_MAX_UPSTREAM_BODY
    """Largest upstream answer read (JSON body or a whole stream): 502 / in-band error above."""
    client_write_seconds: float = 60.0
    """Longest wait for a client to take a write before it counts as gone (499)."""
    body_read_seconds: float = DEFAULT_BODY_SECONDS
    """Longest wait for a request body once its head has arrived (408 and close after)."""
    reload_max_removed: float = 0.5
    """Share of the serving config's models or keys a reload may remove; a reload that removes
    more, or every model, or every key, is rejected like a broken config (see reloadguard.py)."""


REQUEST_IDS: web.RequestKey[tuple[str, str | None]] = web.RequestKey("llmplatform_request_ids")
"""(gateway request id, client request id) of a completion request, for `echo_request_ids`."""


async def echo_request_ids(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: every completion answer (JSON, stream, cached, error) carries
    the gateway's `x-request-id` and, when the client sent one, `x-client-request-id`."""
    ids = request.get(REQUEST_IDS)
    if ids is not None:
        response.headers["x-request-id"] = ids[0]
        if ids[1] is not None:
            response.headers["x-client-request-id"] = ids[1]


def json_error(exc: GatewayError, extra: dict[str, str] | None = None) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers={**exc.headers, **(extra or {})})


HEAD_ROOM = 4096
"""Bytes allowed for what `prepare` adds to an answer's head (status line, Content-Length,
Date, Server, the request ids of `echo_request_ids`, at most a few hundred bytes)."""


def cannot_wait(request: web.Request, response: web.StreamResponse) -> bool:
    """True when sending `response` whole cannot wait for the client, so it needs no write
    timer (arming one cost about 1% of the gateway's CPU per request): a complete answer of
    bytes, nothing still queued on the connection (so its writes are not paused), and the
    answer with its head fits under the transport's high-water mark, so writing it cannot pause
    writing, and only a paused transport makes aiohttp's write wait. Anything else (a large
    answer, a client that has not taken the previous one) is sent under the timer."""
    transport = request.transport
    if transport is None or type(response) is not web.Response:
        return False
    body = response.body
    if not isinstance(body, bytes) or transport.get_write_buffer_size() != 0:
        return False
    room = transport.get_write_buffer_limits()[1] - len(body) - HEAD_ROOM
    if room < 0:
        return False
    for name, value in response.headers.items():  # UTF-8: at most 4 bytes a character
        room -= 4 * (len(name) + len(value) + 4)
    return room >= 0


def _allow(exc: web.HTTPException) -> dict[str, str]:
    """A 405 keeps the Allow header aiohttp computed."""
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


def _credentials(compiled: Compiled) -> dict[str, str | None]:
    """Each model's upstream key, to tell whether a reload with the same config changed one."""
    return {model.id: model.api_key for model in compiled.models.values()}


class Gateway:
    def __init__(self, source: ConfigSource, settings: Settings) -> None:
        self.source = source
        self.settings = settings
        self.compiled: Compiled | None = None
        self._fingerprint: object = None
        self.rejected: dict[str, Any] | None = None
        """The last config refused since the serving one loaded (for /readyz)."""
        self.draining = False
        """Set by `drain` on SIGTERM (`--shutdown-delay`)."""
        self.health = HealthBook()
        self.admission = Admission(settings.redis_url, settings.redis_failure_mode)
        self.audit = AuditSink(
            settings.audit_log,
            max_bytes=settings.audit_log_max_bytes,
            keep=settings.audit_log_keep,
            fsync_seconds=settings.audit_fsync_seconds,
            rotate_seconds=settings.audit_log_rotate_seconds,
        )
        self.recorder = Recorder(self.audit)
        self.cache: rc.LocalCache | rc.RedisCache = (
            rc.RedisCache(settings.redis_url) if settings.redis_url else rc.LocalCache()
        )
        self.upstream = Upstream(
            self.health,
            self.cache,
            StreamLimits(settings.max_upstream_body_bytes, settings.client_write_seconds),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.tracer = tracing.Tracer.from_env()
        """OpenTelemetry traces (tracing.py): None unless the OTEL_* variables turn them on."""

    # -- config ----------------------------------------------------------------------------

    def reload(self) -> bool:
        """Load the source if it changed. Returns True when a new config now serves; a
        config that fails to load is logged and counted, and the previous one keeps serving."""
        try:
            fingerprint = self.source.fingerprint()
        except OSError as exc:
            self._reject("unreadable", f"cannot stat {self.source.describe()}: {exc}")
            return False
        if fingerprint == self._fingerprint:
            return False
        try:
            compiled = compile_config(*self.source.load())
        except Exception as exc:  # any failure to parse or validate keeps the old config
            self._fingerprint = fingerprint
            # unsupported_version, incomplete_generation (a sharded config not all there yet)
            reason = getattr(exc, "reason", None)
            self._reject(reason if isinstance(reason, str) else "invalid", f"{self.source.describe()}: {exc}")
            return False
        self._fingerprint = fingerprint
        if (
            self.compiled is not None
            and compiled.content_hash == self.compiled.content_hash
            and _credentials(compiled) == _credentials(self.compiled)
        ):
            return False  # nothing changed (a changed credential file with the same config does)
        refused = reloadguard.refusal(self.compiled, compiled, self.settings.reload_max_removed)
        if refused is not None:
            self._reject(refused[0], f"{self.source.describe()}: {refused[1]}")
            return False
        self.rejected = None
        previous, self.compiled = self.compiled, compiled
        self._report_credentials(previous, compiled)
        self.audit.default_retention_days = compiled.default_retention_days
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

    def _report_credentials(self, previous: Compiled | None, compiled: Compiled) -> None:
        """A warning once per model whose credential cannot be read (at start and whenever a
        reload makes it so; not per request), a line when it is readable again, and the
        `llmplatform_model_credentials_missing` gauge either way."""
        before = previous.credentials_missing if previous is not None else {}
        now = compiled.credentials_missing
        for model_id, model in now.items():
            m.CREDENTIALS_MISSING.labels(model.name).set(1)
            if model_id not in before:
                log.warning(
                    "model %s is skipped: %s", model.name, model.credential_problem, extra={"model": model_id}
                )
        for model_id, model in before.items():
            if model_id not in now:
                m.CREDENTIALS_MISSING.labels(model.name).set(0)
                if model_id in compiled.models:
                    log.info("model %s: its upstream credential is readable again", model.name)

    def _reject(self, reason: str, message: str) -> None:
        """A config that must not serve: log, count, and show it in /readyz until a good one loads."""
        log.error("config rejected, previous config keeps serving: %s", message, extra={"reason": reason})
        m.CONFIG_RELOADS.labels("rejected").inc()
        m.CONFIG_REJECTED.labels(reason).inc()
        self.rejected = {"reason": reason, "message": message, "time": round(time.time(), 3)}

    async def _reload_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            await loop.run_in_executor(None, self.reload)

    async def on_startup(self, app: web.Application) -> None:
        self.upstream.start()
        self.reload()
        self.audit.start_timers()
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
        if self.tracer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.tracer.shutdown)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes, middlewares=[self._errors])
        for path in ENDPOINTS:
            app.router.add_post(path, self.completion)
        app.router.add_post(messagesapi.COUNT_TOKENS_PATH, self.count_tokens)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/llmplatform/usage", self.usage)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.on_response_prepare.append(self._close_when_draining)
        app.on_response_prepare.append(hash_stream)
        app.on_response_prepare.append(echo_request_ids)
        app.on_response_prepare.append(messagesapi.on_prepare)  # after the ids: it copies x-request-id
        app.on_startup.append(self.on_startup)
        app.on_cleanup.append(self.on_cleanup)
        return app

    def health_app(self) -> web.Application:
        """The probe and metrics endpoints alone (`--health-port`), on the state `app()` runs."""
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """OpenAI-style bodies for everything, including aiohttp's own 404/405."""
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except GatewayError as exc:
            response = json_error(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            body = error_body(exc.status, exc.reason, code=http_error_code(exc.status))
            response = web.json_response(body, status=exc.status, headers=_allow(exc))
        except Exception:
            log.exception("unhandled error", extra={"request_id": request.headers.get("x-request-id")})
            response = web.json_response(error_body(500, "internal gateway error"), status=500)
        if messagesapi.speaks(request):
            messagesapi.answer(response)  # Anthropic's error shape on the Messages API
        return response

    def drain(self) -> None:
        """Stop being a target, keep serving: what a pod does between SIGTERM and its exit.

        Why: Kubernetes removes a terminating pod from its Service while the kubelet sends
        SIGTERM, and kube-proxy on every node takes a moment to follow; clients also hold
        keep-alive connections to this pod. Closing at once would refuse the connections still
        routed here and cut idle keep-alive ones under a request on its way (failed requests in
        a rollout). Draining, /readyz answers 503 and every response says `Connection: close`,
        so each client's next request opens a connection to another pod; the caller waits
        `--shutdown-delay` before it stops listening."""
        self.draining = True
        log.info("draining: /readyz fails, connections close after their response")

    async def _close_when_draining(self, request: web.Request, response: web.StreamResponse) -> None:
        if self.draining:
            response.force_close()  # closed after this answer...
            response.headers["Connection"] = "close"  # ...and the client told (the hook runs after
            # aiohttp derived the headers from keep-alive, before it writes them)

    # -- small endpoints -------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready with a config, unless Redis is required and down, or every model lacks its
        credential. Some models without one leave the gateway ready (`degraded`, with each
        model's problem in `credentials_missing`): all replicas mount the same Secrets, so
        failing readiness would take every replica out of the Service for a problem that
        fallbacks to the other models route around; with no usable model at all, readiness
        fails, so a rollout that loses every credential stops instead of replacing working pods."""
        compiled = self.compiled
        total = len(reloadguard.model_ids(compiled)) if compiled else 0
        missing = compiled.credentials_missing if compiled else {}
        usable = total - len(missing)
        body = {
            "ready": compiled is not None
            and not self.admission.refusing()
            and (usable > 0 or total == 0)
            and not self.draining,
            "draining": self.draining,
            "config": compiled.content_hash if compiled else None,
            "limiter": self.admission.state(),
            "models": total,
            "models_usable": usable,
            "degraded": bool(missing),
            "credentials_missing": {mod.name: mod.credential_problem for mod in missing.values()},
            "config_rejected": self.rejected,
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
        header = messagesapi.api_key(request) or request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            how = "'x-api-key: <key>' or " if messagesapi.speaks(request) else ""
            raise GatewayError(
                401, f"Missing API key: send {how}'Authorization: Bearer <key>'", code="invalid_api_key"
            )
        try:
            # aiohttp hands over header bytes that are not UTF-8 as lone surrogates, which
            # cannot be encoded again: such a token is simply not a key (401, not a 500)
            raw = token.encode("utf-8")
        except UnicodeEncodeError:
            raise GatewayError(401, "Incorrect API key provided", code="invalid_api_key") from None
        digest = hash_api_key(raw)
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

    async def count_tokens(self, request: web.Request) -> web.Response:
        """`POST /v1/messages/count_tokens`: the gateway's prompt estimate, no upstream call."""
        self.authenticate(request)
        ctx = Ctx(request_id=new_request_id(), endpoint="messages", start=time.perf_counter(), http=request)
        body = await self._read_body(ctx)
        return web.Response(body=messagesapi.count_tokens(body), content_type="application/json")

    # -- the completion path ---------------------------------------------------------------

    async def completion(self, request: web.Request) -> web.StreamResponse:
        ctx = Ctx(
            request_id=new_request_id(),
            endpoint=ENDPOINTS[request.path],
            start=time.perf_counter(),
            http=request,
            client_request_id=client_request_id(request.headers.get("x-request-id")),
        )
        ctx.dialect = DIALECTS.get(ctx.endpoint)
        request[REQUEST_IDS] = (ctx.request_id, ctx.client_request_id)
        tracing.begin(ctx, self.tracer)
        response: web.StreamResponse | None = None
        try:
            try:
                response = await self._complete(ctx)
                if ctx.dialect is not None and type(response) is web.Response and response.status == 200:
                    assert isinstance(response.body, bytes)
                    response.body = ctx.dialect.answer(ctx, response.body)
            except GatewayError as exc:
                if ctx.committed is not None:  # the stream has started: no second status line
                    response = await self._fail_committed(ctx, exc.status, exc.code or "error", exc.message)
                else:
                    ctx.status, ctx.error_code = exc.status, exc.code
                    response = json_error(exc)
                    if exc.status == 408:
                        response.force_close()  # the rest of a slow body is not waited for
            except Exception:  # a bug: still one answer and one audit record that says so
                log.exception("unhandled error", extra={"request_id": ctx.request_id})
                gone = request.transport is None or request.transport.is_closing()
                if gone and ctx.committed is None:
                    ctx.status, ctx.error_code = 499, None  # nobody to answer
                    response = web.Response(status=499)
                elif ctx.committed is not None:
                    response = await self._fail_committed(
                        ctx, 500, "internal_error", "internal gateway error"
                    )
                else:
                    ctx.status, ctx.error_code = 500, "internal_error"
                    body = error_body(500, "internal gateway error", code="internal_error")
                    response = web.json_response(body, status=500)
            if not response.prepared and ctx.status != 499:  # 499: nobody left to answer
                if messagesapi.speaks(request) and isinstance(response, web.Response):
                    messagesapi.answer(response)
                await self._deliver(ctx, response)
        finally:  # exactly one record per request, whatever happened (499: cancelled)
            if response is None:
                ctx.status = 499
            try:
                ctx.response_sha256 = response_sha256(response)
            except Exception:
                log.exception("could not hash the response", extra={"request_id": ctx.request_id})
            self.recorder.record(ctx)
            tracing.end(ctx)
        return response

    async def _fail_committed(self, ctx: Ctx, status: int, code: str, message: str) -> web.StreamResponse:
        """A failure after the stream's status line went: end it in-band if it is still open
        (an audit status of its own), else leave the finished stream as it is."""
        out = ctx.committed
        assert out is not None
        if ctx.committed_open:
            await end_in_band(out, ctx, status, code, message, self.settings.client_write_seconds)
        return out

    async def _deliver(self, ctx: Ctx, response: web.StreamResponse) -> None:
        """Send a whole (JSON) answer, waiting at most `client_write_seconds` for the client to
        take it: a client that does not read would otherwise hold the body in memory for as
        long as it likes. It then counts as gone (499)."""
        request = ctx.http
        try:
            if cannot_wait(request, response):
                await response.prepare(request)
                await response.write_eof()
            else:
                async with asyncio.timeout(self.settings.client_write_seconds):
                    await response.prepare(request)
                    await response.write_eof()
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()
            ctx.status, ctx.error_code = 499, "client_write_timeout"
            m.CONNECTIONS_CLOSED.labels("write_timeout").inc()
            log.info("client did not read the answer", extra={"request_id": ctx.request_id})
        except (ConnectionError, aiohttp.ClientConnectionError):
            ctx.status = 499

    async def _read_body(self, ctx: Ctx) -> dict[str, Any]:
        request = ctx.http
        check_content_type(request.headers.get("Content-Type", ""))
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise GatewayError(413, f"request body exceeds {limit} bytes", code="request_too_large")
        seconds = self.settings.body_read_seconds
        try:
            if request.content.is_eof():
                # the whole body came with the head (the common case): reading it cannot wait,
                # so it needs no timer (arming one cost about 2% of the gateway's CPU)
                raw = await request.read()
            else:
                async with asyncio.timeout(seconds):
                    raw = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise GatewayError(413, f"request body exceeds {limit} bytes", code="request_too_large") from exc
        except TimeoutError:  # a slow body (slowloris): answer, then close the connection
            m.CONNECTIONS_CLOSED.labels("body_timeout").inc()
            raise GatewayError(
                408, f"the request body did not arrive within {seconds}s", code="request_timeout"
            ) from None
        ctx.request_sha256 = hashlib.sha256(raw).hexdigest()
        return parse_body(raw)

    async def _complete(self, ctx: Ctx) -> web.StreamResponse:
        request = ctx.http
        key = self.authenticate(request)
        compiled = self.compiled
        assert compiled is not None
        tenant = key.tenant
        ctx.tenant, ctx.key, ctx.user, ctx.policy = tenant.id, key.name, key.user, tenant.policy
        ctx.retention_days, ctx.cache_ttl = tenant.retention_days, tenant.cache_ttl
        if key.role not in gv.ROLE_CEILING:
            m.GOVERNANCE_DENIED.labels(tenant.id, "role").inc()
            gv.check_role(key.role)
        ctx.body = body = await self._read_body(ctx)
        if ctx.dialect is not None:
            requested, max_tokens, ctx.stream = ctx.dialect.check(body)
            client_user = ctx.dialect.user(body)
        else:
            requested, max_tokens, ctx.stream = check_request(body, ctx.endpoint)
            client_user = body.get("user") if isinstance(body.get("user"), str) else None
        if key.trust_client_user and client_user:
            # only a key marked trustClientUser speaks for its end users; any other caller
            # could pick a fresh `user` per request and step around userLimits
            ctx.user = client_user
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
        if ctx.dialect is not None:
            ctx.prompt = prompt = ctx.dialect.prompt_tokens(body)
            ctx.shape = shape = ctx.dialect.shape(body)
        else:
            ctx.prompt = prompt = prompt_tokens(body, ctx.endpoint)
            ctx.shape = shape = worstcase.shape(body, ctx.endpoint, prompt)
        if shape.max_tokens:
            max_tokens = shape.max_tokens
        cands = candidates(
            tenant,
            requested,
            tier_header,
            ctx.form,
            prompt,
            max_tokens,
            priority,
            self.health,
            compiled.models,
        )
        cands = self._govern(ctx, key, requested, cands)
        assert ctx.extra is not None

        outputs = [(c.model, worst_case_output(c.model, prompt, shape, ctx.form)) for c in cands]
        ctx.worst_out = max(out for _, out in outputs)
        worst_tokens = prompt + ctx.worst_out
        worst_cost = max(model.cost(prompt, out) for model, out in outputs)
        limiter, charges = await self.admission.reserve(
            tenant, ctx.user, worst_tokens, worst_cost, ctx.extra, trace=ctx.trace
        )
        try:
            try:
                cached = await responsecache.lookup(
                    ctx,
                    requested,
                    tier_header,
                    cands,
                    self.cache,
                    compiled.models,
                    self.settings.client_write_seconds,
                )
            except Exception:  # the cache is an optimisation: a failing one is a miss
                if ctx.committed is not None:
                    raise
                log.exception("response cache lookup failed", extra={"request_id": ctx.request_id})
                cached, ctx.cache, ctx.cache_key = None, None, None
            if cached is not None:
                return cached
            response = await self.upstream.attempts(ctx, cands)
            try:
                await responsecache.store(ctx, response, self.cache)
            except Exception:
                log.exception("response cache store failed", extra={"request_id": ctx.request_id})
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
