"""`llmplatform mock-upstream`: an OpenAI-compatible TEST server, never a real model.

Why the project ships one: the gateway's tests, benchmark and demo need an upstream that
answers like OpenAI (JSON and SSE, usage included) and fails on demand: a status code, a hang
past the gateway's timeout, or a connection dropped in the middle of a stream. Every response
says it comes from a test server (`system_fingerprint`, the `x-llmplatform-mock` header and the
generated text), so it cannot be mistaken for a model.

Behaviour is set on the command line and can be changed at run time with
`POST /_mock/config` (same field names as `MockSettings`); `GET /_mock/stats` reports what was
received, which tests use to check fallback sequences.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import random
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from llmplatform.gateway import sse

TEST_LABEL = "llmplatform-mock-upstream (TEST SERVER, not a model)"
FAILURE_MODES = ("status", "timeout", "drop")
USAGE_PLACEHOLDER = "__llmplatform_mock_usage__"
HOSTILE_MODES = (
    "",
    "redirect",
    "huge_body",
    "huge_event",
    "garbage_sse",
    "bad_json_sse",
    "endless",
    "garbage_first",
)
WORDS = ("this", "is", "a", "test", "reply", "from", "the", "llmplatform", "mock", "upstream")


@dataclass
class MockSettings:
    latency_ms: float = 0.0
    """Delay before the response (before the first chunk when streaming)."""
    chunk_delay_ms: float = 0.0
    """Delay between streamed chunks."""
    done_delay_ms: float = 0.0
    """Delay after the last content chunk, before the usage chunk and `[DONE]` (tests: a
    client that leaves between the two)."""
    failure_rate: float = 0.0
    """Probability in 0..1 that a request fails with `failure_mode`."""
    fail_next: int = 0
    """Fail exactly the next N requests (deterministic, for tests), then follow failure_rate."""
    failure_mode: str = "status"
    failure_status: int = 500
    hang_seconds: float = 3600.0
    """How long `timeout` failures hang before answering."""
    completion_tokens: int = 16
    """Tokens generated when the request has no max_tokens (each chunk is one token)."""
    embedding_dims: int = 8
    reply: str | None = None
    """Fixed generated text instead of the test words (e.g. text with personal data, to test
    output scanning); streamed `reply_chunk_chars` characters per chunk."""
    reply_chunk_chars: int = 5
    usage_json: str | None = None
    """Hostile upstream (tests): this raw JSON text replaces the `usage` value of every answer
    and usage chunk (e.g. `{"prompt_tokens": -5, "completion_tokens": 1e400}`), so tests can
    send what a broken or malicious upstream would, including what Python cannot encode."""
    models: list[str] = field(default_factory=lambda: ["mock-model"])
    seed: int | None = None
    retry_after: str = "1"
    """The Retry-After header of injected 429s."""
    hostile: str = ""
    """A hostile upstream, for the gateway's security tests (one of HOSTILE_MODES): `redirect`
    answers 302 to /_mock/redirected (which answers like a model); `huge_body` pads a JSON answer
    to `hostile_bytes`; in a stream, after one good chunk, `huge_event` sends one event of
    `hostile_bytes`, `garbage_sse` a line that is not SSE, `bad_json_sse` `data: {not json`, and
    `endless` good chunks until `hostile_bytes` are sent; `garbage_first` sends the bad line
    before any good chunk."""
    hostile_bytes: int = 1024 * 1024
    tool_arguments: str | None = None
    """`/v1/responses` only: when set and the request has function tools, the answer is a call
    of the first tool with these arguments, until the input ends with a function call output
    (then the answer is text again): one function-calling round trip."""


@dataclass
class MockStats:
    requests: int = 0
    failures: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    last_headers: dict[str, str] = field(default_factory=dict)
    last_body: Any = None


class MockUpstream:
    """State and handlers of one mock server."""

    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.stats = MockStats()
        self.rng = random.Random(settings.seed)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/_mock/stats", self.get_stats)
        app.router.add_post("/_mock/config", self.set_config)
        app.router.add_post("/_mock/reset", self.reset)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_route("*", "/_mock/redirected", self.redirected)
        # vLLM's readiness path, so the mock can stand in for a self-hosted model's server
        app.router.add_get("/health", self.healthz)
        return app

    async def redirected(self, request: web.Request) -> web.Response:
        """Where `hostile: redirect` points: an answer that must never reach a gateway client."""
        self.stats.by_path[request.path] = self.stats.by_path.get(request.path, 0) + 1
        choice = {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "REDIRECTED"},
        }
        return web.json_response({"id": "x", "object": "chat.completion", "choices": [choice]})

    # -- control ---------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "server": TEST_LABEL})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self.stats))

    async def reset(self, request: web.Request) -> web.Response:
        self.stats = MockStats()
        return web.json_response({"ok": True})

    async def set_config(self, request: web.Request) -> web.Response:
        changes = await request.json()
        known = {f.name for f in dataclasses.fields(MockSettings)}
        unknown = sorted(set(changes) - known)
        if (
            unknown
            or changes.get("failure_mode", "status") not in FAILURE_MODES
            or changes.get("hostile", "") not in HOSTILE_MODES
        ):
            return web.json_response({"error": f"unknown settings {unknown} or bad failure_mode"}, status=400)
        self.settings = dataclasses.replace(self.settings, **changes)
        return web.json_response(dataclasses.asdict(self.settings))

    # -- helpers ---------------------------------------------------------------------------

    async def _receive(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}),
                content_type="application/json",
            ) from exc
        if not isinstance(body, dict):
            body = {}
        stats = self.stats
        stats.requests += 1
        stats.by_path[request.path] = stats.by_path.get(request.path, 0) + 1
        model = str(body.get("model"))
        stats.by_model[model] = stats.by_model.get(model, 0) + 1
        stats.last_headers = {k.lower(): v for k, v in request.headers.items()}
        stats.last_body = body
        if self.settings.latency_ms:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        return body

    def _should_fail(self) -> bool:
        s = self.settings
        if s.fail_next > 0:
            s.fail_next -= 1
            return True
        return s.failure_rate > 0 and self.rng.random() < s.failure_rate

    async def _fail(self, request: web.Request, *, before_stream: bool = True) -> web.StreamResponse:
        """The configured failure for a request that was chosen to fail (not used for drops
        mid-stream, which the streaming writer handles)."""
        s = self.settings
        self.stats.failures += 1
        if s.failure_mode == "timeout":
            await asyncio.sleep(s.hang_seconds)
            return web.json_response({"error": {"message": "late", "type": "timeout"}}, status=504)
        if s.failure_mode == "drop":
            if request.transport is not None:
                request.transport.abort()  # drop the TCP connection without any response
            raise ConnectionResetError("mock-upstream dropped the connection")
        headers = {"retry-after": s.retry_after} if s.failure_status == 429 else {}
        body = {
            "error": {
                "message": f"{TEST_LABEL}: injected failure {s.failure_status}",
                "type": "rate_limit_error" if s.failure_status == 429 else "server_error",
                "param": None,
                "code": "mock_failure",
            }
        }
        return web.json_response(body, status=s.failure_status, headers=headers)

    def _output_tokens(self, body: dict[str, Any]) -> int:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        n = self.settings.completion_tokens
        return max(1, min(n, int(limit))) if isinstance(limit, int) and limit > 0 else n

    @staticmethod
    def _choices(body: dict[str, Any], name: str) -> int:
        value = body.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> int:
        text = json.dumps(body.get("messages", body.get("prompt", body.get("input", ""))))
        return max(1, len(text) // 4)

    @staticmethod
    def _word(i: int) -> str:
        return WORDS[i % len(WORDS)] + " "

    def _usage(self, prompt: int, completion: int, responses: bool = False) -> Any:
        if self.settings.usage_json is not None:
            return USAGE_PLACEHOLDER
        if responses:
            return {
                "input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": prompt + completion,
            }
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _encode(self, payload: dict[str, Any]) -> bytes:
        """JSON of an answer or chunk, with `usage_json` spliced in raw when it is set."""
        raw = json.dumps(payload, separators=(",", ":")).encode()
        if self.settings.usage_json is not None:
            raw = raw.replace(json.dumps(USAGE_PLACEHOLDER).encode(), self.settings.usage_json.encode())
        return raw

    # -- endpoints -------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": TEST_LABEL} for m in self.settings.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        body = await self._receive(request)
        fails = self._should_fail()
        mode = self.settings.failure_mode
        if fails and not (mode == "drop" and body.get("stream")):
            return await self._fail(request)
        hostile = self.settings.hostile
        if hostile == "redirect":
            raise web.HTTPFound("/_mock/redirected")
        model = str(body.get("model", "mock-model"))
        created = int(time.time())
        rid = ("chatcmpl-" if chat else "cmpl-") + hashlib.sha1(str(self.rng.random()).encode()).hexdigest()[
            :24
        ]
        n_out = self._output_tokens(body)
        n_in = self._prompt_tokens(body)
        kind = "chat.completion" if chat else "text_completion"
        base = {"id": rid, "created": created, "model": model, "system_fingerprint": TEST_LABEL}
        pieces = [self._word(i) for i in range(n_out)]
        if self.settings.reply is not None:
            size = max(1, self.settings.reply_chunk_chars)
            reply = self.settings.reply
            pieces = [reply[i : i + size] for i in range(0, len(reply), size)]
            n_out = len(pieces)
        # `n` choices are returned and `best_of` (completions) are generated and billed, as
        # OpenAI does; a stream carries choice 0's text but bills every choice in its usage
        returned = self._choices(body, "n")
        billed = max(returned, self._choices(body, "best_of")) if not chat else returned
        if not body.get("stream"):
            text = "".join(pieces)
            if hostile == "huge_body":
                text = "x" * self.settings.hostile_bytes
            choices: list[dict[str, Any]] = []
            for index in range(returned):
                choice: dict[str, Any] = {"index": index, "finish_reason": "length", "logprobs": None}
                if chat:
                    choice["message"] = {"role": "assistant", "content": text, "refusal": None}
                else:
                    choice["text"] = text
                choices.append(choice)
            usage = self._usage(n_in, n_out * billed)
            payload = {**base, "object": kind, "choices": choices, "usage": usage}
            return web.Response(
                body=self._encode(payload),
                content_type="application/json",
                headers={"x-llmplatform-mock": "test-server"},
            )
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream",
                "cache-control": "no-cache",
                "x-llmplatform-mock": "test-server",
            }
        )
        await response.prepare(request)
        chunk_kind = "chat.completion.chunk" if chat else "text_completion"
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        drop_at = n_out // 2 if fails else -1
        if fails:
            self.stats.failures += 1

        async def send(payload: dict[str, Any]) -> None:
            await response.write(sse.data_event(self._encode(payload)) + sse.SEPARATOR)

        if hostile == "garbage_first":
            await response.write(b"this is not server-sent events\n\n")
            await response.write_eof()
            return response

        if chat:
            await send(
                {
                    **base,
                    "object": chunk_kind,
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                    ],
                }
            )
        if hostile in ("huge_event", "garbage_sse", "bad_json_sse", "endless"):
            one = {**base, "object": chunk_kind, "choices": [{"index": 0, "delta": {"content": "ok "}}]}
            await send(one)
            if hostile == "huge_event":
                await response.write(b'data: {"pad": "' + b"x" * self.settings.hostile_bytes + b'"}\n\n')
            elif hostile == "garbage_sse":
                await response.write(b"<html>502 Bad Gateway</html>\n\n")
            elif hostile == "bad_json_sse":
                await response.write(b"data: {not json\n\n")
            else:
                sent = 0
                big = {**one, "choices": [{"index": 0, "delta": {"content": "x" * 16384}}]}
                frame = sse.frame(big)  # 16 KiB events: megabytes in a few hundred writes
                while sent < self.settings.hostile_bytes:
                    await response.write(frame)
                    sent += len(frame)
            await send(one)
            await response.write(sse.DONE + sse.SEPARATOR)
            await response.write_eof()
            return response
        for i, piece in enumerate(pieces):
            if i == drop_at:
                if request.transport is not None:
                    request.transport.abort()
                return response
            if self.settings.chunk_delay_ms:
                await asyncio.sleep(self.settings.chunk_delay_ms / 1000)
            delta: dict[str, Any] = {"delta": {"content": piece}} if chat else {"text": piece}
            await send(
                {**base, "object": chunk_kind, "choices": [{"index": 0, **delta, "finish_reason": None}]}
            )
        final: dict[str, Any] = {"delta": {}} if chat else {"text": ""}
        await send(
            {**base, "object": chunk_kind, "choices": [{"index": 0, **final, "finish_reason": "length"}]}
        )
        if self.settings.done_delay_ms:
            await asyncio.sleep(self.settings.done_delay_ms / 1000)
        if include_usage:
            usage = self._usage(n_in, n_out * billed)
            await send({**base, "object": chunk_kind, "choices": [], "usage": usage})
        await response.write(sse.DONE + sse.SEPARATOR)
        await response.write_eof()
        return response

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API (`POST /v1/responses`): text (the test words or `reply`), or a call
        of the first function tool (`tool_arguments`); the failure and hostile modes as for chat."""
        body = await self._receive(request)
        s = self.settings
        fails = self._should_fail()
        if fails and not (s.failure_mode == "drop" and body.get("stream")):
            return await self._fail(request)
        if s.hostile == "redirect":
            raise web.HTTPFound("/_mock/redirected")
        rid = "resp_" + hashlib.sha1(str(self.rng.random()).encode()).hexdigest()[:24]
        limit = body.get("max_output_tokens")
        n_out = (
            max(1, min(s.completion_tokens, limit))
            if isinstance(limit, int) and limit > 0
            else s.completion_tokens
        )
        pieces = [self._word(i) for i in range(n_out)]
        if s.reply is not None:
            size = max(1, s.reply_chunk_chars)
            pieces = [s.reply[i : i + size] for i in range(0, len(s.reply), size)]
            n_out = len(pieces)
        inp = body.get("input")
        prompt = max(1, len(json.dumps([body.get("instructions"), inp])) // 4)
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
        last = inp[-1] if isinstance(inp, list) and inp else {}
        call = None
        if (
            s.tool_arguments is not None
            and tools
            and not (isinstance(last, dict) and last.get("type") == "function_call_output")
        ):
            call = {
                "id": "fc_" + rid[5:],
                "type": "function_call",
                "status": "completed",
                "call_id": "call_" + rid[5:],
                "name": str(tools[0].get("name")),
                "arguments": s.tool_arguments,
            }
            n_out = max(1, len(s.tool_arguments) // 4)
        text = "".join(pieces)
        if s.hostile == "huge_body" and not body.get("stream"):
            text = "x" * s.hostile_bytes
        msg_id = "msg_" + rid[5:]
        content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        message = {
            "id": msg_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": content,
        }
        output = [call] if call is not None else [message]
        response: dict[str, Any] = {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "model": str(body.get("model", "mock-model")),
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "store": body.get("store", True),
            "metadata": {"server": TEST_LABEL},
            "usage": self._usage(prompt, n_out, responses=True),
        }
        headers = {"x-llmplatform-mock": "test-server"}
        if not body.get("stream"):
            return web.Response(body=self._encode(response), content_type="application/json", headers=headers)
        out = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache", **headers}
        )
        await out.prepare(request)
        seq = 0

        async def send(kind: str, **payload: Any) -> None:
            nonlocal seq
            data = self._encode({"type": kind, "sequence_number": seq, **payload})
            seq += 1
            await out.write(f"event: {kind}\n".encode() + sse.data_event(data) + sse.SEPARATOR)

        if s.hostile == "garbage_first":
            await out.write(b"this is not server-sent events\n\n")
            await out.write_eof()
            return out
        await send(
            "response.created", response={**response, "status": "in_progress", "output": [], "usage": None}
        )
        if call is not None:
            await send(
                "response.output_item.added",
                output_index=0,
                item={**call, "arguments": "", "status": "in_progress"},
            )
            for i in range(0, len(call["arguments"]), 8):
                piece = call["arguments"][i : i + 8]
                await send(
                    "response.function_call_arguments.delta", item_id=call["id"], output_index=0, delta=piece
                )
            await send(
                "response.function_call_arguments.done",
                item_id=call["id"],
                output_index=0,
                arguments=call["arguments"],
            )
            await send("response.output_item.done", output_index=0, item=call)
        else:
            where = {"item_id": msg_id, "output_index": 0, "content_index": 0}
            await send(
                "response.output_item.added",
                output_index=0,
                item={**message, "status": "in_progress", "content": []},
            )
            await send("response.content_part.added", **where, part={**content[0], "text": ""})
            if s.hostile in ("huge_event", "garbage_sse", "bad_json_sse", "endless"):
                await send("response.output_text.delta", **where, delta="ok ")
                if s.hostile == "huge_event":
                    await out.write(b'data: {"pad": "' + b"x" * s.hostile_bytes + b'"}\n\n')
                elif s.hostile == "garbage_sse":
                    await out.write(b"<html>502 Bad Gateway</html>\n\n")
                elif s.hostile == "bad_json_sse":
                    await out.write(b"data: {not json\n\n")
                else:
                    sent = 0
                    while sent < s.hostile_bytes:
                        await send("response.output_text.delta", **where, delta="x" * 16384)
                        sent += 16384
            drop_at = n_out // 2 if fails else -1
            if fails:
                self.stats.failures += 1
            for i, piece in enumerate(pieces):
                if i == drop_at:
                    if request.transport is not None:
                        request.transport.abort()
                    return out
                if s.chunk_delay_ms:
                    await asyncio.sleep(s.chunk_delay_ms / 1000)
                await send("response.output_text.delta", **where, delta=piece, logprobs=[])
            await send("response.output_text.done", **where, text=text, logprobs=[])
            await send("response.content_part.done", **where, part=content[0])
            await send("response.output_item.done", output_index=0, item=message)
        if s.done_delay_ms:
            await asyncio.sleep(s.done_delay_ms / 1000)
        await send("response.completed", response=response)
        await out.write_eof()
        return out

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._receive(request)
        if self._should_fail():
            return await self._fail(request)
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
        data = []
        for index, item in enumerate(inputs):
            digest = hashlib.sha256(json.dumps(item).encode()).digest()
            dims = self.settings.embedding_dims
            vector = [(digest[i % len(digest)] - 128) / 128 for i in range(dims)]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        n_in = self._prompt_tokens(body)
        payload = {
            "object": "list",
            "data": data,
            "model": str(body.get("model", "mock-model")),
            "usage": {"prompt_tokens": n_in, "total_tokens": n_in},
        }
        return web.json_response(payload, headers={"x-llmplatform-mock": "test-server"})


def serve(
    host: str, port: int, settings: MockSettings, tls_cert: str | None = None, tls_key: str | None = None
) -> None:
    """Run the test server until interrupted; with `tls_cert` and `tls_key` (PEM files) it
    speaks HTTPS (tests of the gateway's upstream TLS: certificates from a test CA)."""
    from llmplatform.gateway.main import run_loop

    mock = MockUpstream(settings)
    context = None
    if tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)

    async def main() -> None:
        runner = web.AppRunner(mock.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, ssl_context=context).start()
        scheme = "https" if context is not None else "http"
        print(f"{TEST_LABEL} listening on {scheme}://{host}:{port}/v1", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        run_loop(main())
