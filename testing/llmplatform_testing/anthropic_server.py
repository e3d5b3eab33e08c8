"""A local Anthropic Messages-API TEST server, started as a real process by the gateway tests.

Why not the mock upstream: that one speaks OpenAI. This one speaks the Messages API and is
strict about it, so the gateway's translation is checked against Anthropic's own definitions
rather than against our reading of them: every request body is validated with the official
`anthropic` package's `MessageCreateParams` (unknown keys rejected at every depth, lazily
validated iterables forced), and every answer and stream event is built as the package's
pydantic models (`Message`, `RawMessageStreamEvent` members, `ErrorResponse`), so what the
gateway parses has the real shape. An invalid request gets Anthropic's 400 error body.

Control (for tests): `POST /_script {"replies": [...]}` queues what the next requests get, one
reply per request, else a default text reply. A reply is an object with any of:
  `text`, `tool_use: {id, name, input}`, `stop_reason`, `stop_sequence`, `usage: {...}`,
  `chunks: [...]` (streams: the text deltas, joined they are the text; else one per word),
  `error: {status, type, message}` (an HTTP error answer),
  `stream_error: {type, message, after_text}` (streams only: an `error` event first, or after
  the first text delta when after_text is true),
  `start_delay_ms` (streams: a pause before the first event), `delay_ms` (streams: a pause
  before each text delta), `stop_delay_ms` (streams: a pause
  after the last content block, before `message_delta` and `message_stop`).
`GET /_received` lists every request (headers, body, whether it was valid, the validation
error); `POST /_reset` clears both lists.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import pkgutil
from typing import Any

import anthropic.types as at
from aiohttp import web
from anthropic.types.shared import ErrorResponse
from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import is_typeddict

API_VERSION = "2023-06-01"
DEFAULT_TEXT = "Hello from the Anthropic test server."


def strict_adapter() -> TypeAdapter[Any]:
    """MessageCreateParams with `extra="forbid"` on every TypedDict of anthropic.types, so a key
    the API does not define (an OpenAI field leaking through) is an error, as it is upstream."""
    for info in pkgutil.iter_modules(at.__path__):
        if info.name == "beta":
            continue
        module = importlib.import_module(f"anthropic.types.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and is_typeddict(value):
                value.__pydantic_config__ = ConfigDict(extra="forbid", arbitrary_types_allowed=True)  # type: ignore[attr-defined]
    return TypeAdapter(at.MessageCreateParams)


def force(value: Any) -> Any:
    """Consume pydantic's lazy `Iterable` validators so nested errors surface now."""
    if isinstance(value, dict):
        return {k: force(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or type(value).__name__ == "ValidatorIterator":
        return [force(v) for v in value]
    return value


def error_json(kind: str, message: str) -> dict[str, Any]:
    return ErrorResponse.model_validate(
        {"type": "error", "error": {"type": kind, "message": message}}
    ).model_dump(mode="json", exclude_none=True)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class Server:
    def __init__(self) -> None:
        self.adapter = strict_adapter()
        self.replies: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.count = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_post("/_script", self.script)
        app.router.add_get("/_received", self.get_received)
        app.router.add_post("/_reset", self.reset)
        return app

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def script(self, request: web.Request) -> web.Response:
        self.replies.extend((await request.json())["replies"])
        return web.json_response({"queued": len(self.replies)})

    async def get_received(self, request: web.Request) -> web.Response:
        return web.json_response(self.received)

    async def reset(self, request: web.Request) -> web.Response:
        self.replies.clear()
        self.received.clear()
        return web.json_response({})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        record: dict[str, Any] = {"headers": dict(request.headers), "body": None, "valid": False}
        self.received.append(record)
        if request.headers.get("anthropic-version") != API_VERSION:
            record["error"] = "anthropic-version"
            return web.json_response(
                error_json("invalid_request_error", "anthropic-version: header is required"), status=400
            )
        if not request.headers.get("x-api-key"):
            record["error"] = "x-api-key"
            return web.json_response(
                error_json("authentication_error", "x-api-key header is required"), status=401
            )
        try:
            body = json.loads(raw)
            record["body"] = body
            force(self.adapter.validate_python(body))
        except (ValueError, ValidationError) as exc:
            record["error"] = str(exc)
            return web.json_response(error_json("invalid_request_error", str(exc)[:2000]), status=400)
        record["valid"] = True
        self.count += 1
        reply: dict[str, Any] = self.replies.pop(0) if self.replies else {"text": DEFAULT_TEXT}
        if "error" in reply:
            err = reply["error"]
            return web.json_response(
                error_json(err["type"], err.get("message", "scripted error")), status=err["status"]
            )
        message = self._message(body, reply)
        if body.get("stream"):
            return await self._stream(request, message, reply)
        return web.json_response(message.model_dump(mode="json"))

    def _message(self, body: dict[str, Any], reply: dict[str, Any]) -> at.Message:
        content: list[Any] = []
        if reply.get("chunks"):
            reply["text"] = "".join(reply["chunks"])
        if reply.get("text") is not None:
            content.append(at.TextBlock(type="text", text=reply["text"]))
        if reply.get("tool_use"):
            content.append(at.ToolUseBlock(type="tool_use", **reply["tool_use"]))
        out_tokens = sum(_tokens(b.text) if b.type == "text" else 5 for b in content)
        usage: dict[str, Any] = {
            "input_tokens": _tokens(json.dumps(body["messages"])),
            "output_tokens": out_tokens,
        }
        usage.update(reply.get("usage") or {})
        stop: Any = reply.get("stop_reason") or ("tool_use" if reply.get("tool_use") else "end_turn")
        return at.Message(
            id=f"msg_test_{self.count:06d}",
            type="message",
            role="assistant",
            model=body["model"],
            content=content,
            stop_reason=stop,
            stop_sequence=reply.get("stop_sequence"),
            usage=at.Usage.model_validate(usage),
        )

    async def _stream(
        self, request: web.Request, message: at.Message, reply: dict[str, Any]
    ) -> web.StreamResponse:
        out = web.StreamResponse(status=200, headers={"content-type": "text/event-stream"})
        await out.prepare(request)

        async def send(kind: str, payload: dict[str, Any]) -> None:
            await out.write(f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode())

        async def emit(event: Any) -> None:
            await send(event.type, event.model_dump(mode="json"))

        failure = reply.get("stream_error")
        if failure and not failure.get("after_text"):
            await send("error", error_json(failure["type"], failure.get("message", "scripted")))
            await out.write_eof()
            return out
        if reply.get("start_delay_ms"):
            await asyncio.sleep(reply["start_delay_ms"] / 1000)
        start = message.model_copy(
            update={
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": message.usage.model_copy(update={"output_tokens": 1}),
            }
        )
        await emit(at.RawMessageStartEvent(type="message_start", message=start))
        await send("ping", {"type": "ping"})
        for index, block in enumerate(message.content):
            if isinstance(block, at.TextBlock):
                await emit(
                    at.RawContentBlockStartEvent(
                        type="content_block_start",
                        index=index,
                        content_block=at.TextBlock(type="text", text=""),
                    )
                )
                pieces = reply.get("chunks") or [w + " " for w in block.text.split(" ")]
                if not reply.get("chunks"):
                    pieces[-1] = pieces[-1][:-1]
                for piece in pieces:
                    if reply.get("delay_ms"):
                        await asyncio.sleep(reply["delay_ms"] / 1000)
                    delta = at.TextDelta(type="text_delta", text=piece)
                    await emit(
                        at.RawContentBlockDeltaEvent(type="content_block_delta", index=index, delta=delta)
                    )
                    if failure:  # after_text: the stream breaks after its first delta
                        await send("error", error_json(failure["type"], failure.get("message", "scripted")))
                        await out.write_eof()
                        return out
            elif isinstance(block, at.ToolUseBlock):
                opening = at.ToolUseBlock(type="tool_use", id=block.id, name=block.name, input={})
                await emit(
                    at.RawContentBlockStartEvent(
                        type="content_block_start", index=index, content_block=opening
                    )
                )
                arguments = json.dumps(block.input)
                third = max(1, len(arguments) // 3)
                for at_ in range(0, len(arguments), third):
                    delta_json = at.InputJSONDelta(
                        type="input_json_delta", partial_json=arguments[at_ : at_ + third]
                    )
                    await emit(
                        at.RawContentBlockDeltaEvent(
                            type="content_block_delta", index=index, delta=delta_json
                        )
                    )
            await emit(at.RawContentBlockStopEvent(type="content_block_stop", index=index))
        if reply.get("stop_delay_ms"):
            await asyncio.sleep(reply["stop_delay_ms"] / 1000)
        await emit(
            at.RawMessageDeltaEvent.model_validate(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message.stop_reason, "stop_sequence": message.stop_sequence},
                    "usage": {"output_tokens": message.usage.output_tokens},
                }
            )
        )
        await emit(at.RawMessageStopEvent(type="message_stop"))
        await out.write_eof()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(Server().app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
