"""Chat completion answers rendered as Responses API answers: the JSON `response` object, and
the stream of Responses events (`response.created`, `response.output_text.delta`,
`response.function_call_arguments.delta`, `response.completed` with usage, `error` and
`response.failed` in-band), as the official `openai` SDK's stream helpers expect them.

Why at the edge: inside the gateway a Responses request's answer is a chat completion
(responses.py says why), so the relay, the output scanner, the cache and the usage checks run
unchanged; what the client is sent is rendered here from what they let through. `usage` in
the rendered answer is what the gateway charged: the upstream's when it was believable, else
the gateway's own count (accounting.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmplatform.gateway.accounting import answer_of, own_count

if TYPE_CHECKING:
    from llmplatform.gateway.context import Ctx

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""chat finish_reason -> Responses `incomplete_details.reason`."""
ECHOED = ("instructions", "max_output_tokens", "temperature", "top_p", "user")


def usage(ctx: Ctx, cached: int = 0) -> dict[str, Any]:
    """The Responses usage of what the request was charged."""
    if ctx.usage_reported:
        tokens_in, tokens_out = ctx.tokens_in, ctx.tokens_out
    else:  # what settlement charges (admission.py)
        tokens_in, tokens_out = own_count(ctx)
    return {
        "input_tokens": tokens_in,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": tokens_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens_in + tokens_out,
    }


def response_id(ctx: Ctx, upstream_id: Any) -> str:
    """The upstream's id when it is a Responses id (passthrough), else one of the gateway's."""
    if isinstance(upstream_id, str) and upstream_id.startswith("resp_") and upstream_id.isascii():
        return upstream_id[:128]
    return f"resp_{ctx.request_id}"


def envelope(ctx: Ctx, rid: str, created: int, model: str, status: str) -> dict[str, Any]:
    """The `response` object without output and usage: the request's parameters echoed."""
    body = ctx.body
    text = body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
    out: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "truncation": body.get("truncation", "disabled"),
        "metadata": body.get("metadata") or {},
        "usage": None,
    }
    for name in ECHOED:
        out[name] = body.get(name)
    return out


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _finish(doc: dict[str, Any], finish: Any) -> None:
    reason = INCOMPLETE.get(str(finish))
    if reason is not None:
        doc["status"], doc["incomplete_details"] = "incomplete", {"reason": reason}


def render_json(ctx: Ctx, raw: bytes) -> bytes:
    """A chat.completion (as the gateway carries it) as a Responses `response` object."""
    doc = answer_of(raw)
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return raw
    choice = choices[0]
    message = _dict(choice.get("message"))
    created = doc["created"] if isinstance(doc.get("created"), int) else int(time.time())
    out = envelope(
        ctx, response_id(ctx, doc.get("id")), created, str(doc.get("model", ctx.model)), "completed"
    )
    content = message.get("content")
    calls: list[Any] = message["tool_calls"] if isinstance(message.get("tool_calls"), list) else []
    if isinstance(content, str) and (content or not calls):
        out["output"].append(message_item(f"msg_{ctx.request_id}", content))
    for i, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            out["output"].append(
                call_item(
                    f"fc_{ctx.request_id}_{i}",
                    str(call.get("id", "")),
                    str(fn.get("name", "")),
                    str(fn.get("arguments", "")),
                )
            )
    _finish(out, choice.get("finish_reason"))
    details = (
        (doc.get("usage") or {}).get("prompt_tokens_details") if isinstance(doc.get("usage"), dict) else None
    )
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    out["usage"] = usage(ctx, cached if isinstance(cached, int) and not isinstance(cached, bool) else 0)
    return json.dumps(out, separators=(",", ":")).encode()


# -- the stream --------------------------------------------------------------------------------


@dataclass
class _Item:
    index: int
    id: str
    kind: str
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


@dataclass
class Renderer:
    """chat.completion.chunk events in (SSE bytes, as the relay writes them), Responses
    events out."""

    ctx: Ctx
    seq: int = 0
    rid: str = ""
    created: int = 0
    model: str = ""
    items: list[_Item] = field(default_factory=list)
    text: _Item | None = None
    calls: dict[int, _Item] = field(default_factory=dict)
    finish: Any = None
    ended: bool = False
    buffer: bytes = b""

    def _event(self, kind: str, **payload: Any) -> bytes:
        self.seq += 1
        data = json.dumps({"type": kind, "sequence_number": self.seq - 1, **payload}, separators=(",", ":"))
        return f"event: {kind}\ndata: {data}\n\n".encode()

    def _envelope(self, status: str) -> dict[str, Any]:
        return envelope(self.ctx, self.rid, self.created, self.model, status)

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        self.rid = response_id(self.ctx, chunk.get("id"))
        self.created = chunk["created"] if isinstance(chunk.get("created"), int) else int(time.time())
        self.model = str(chunk.get("model") or self.ctx.model)
        return [
            self._event("response.created", response=self._envelope("in_progress")),
            self._event("response.in_progress", response=self._envelope("in_progress")),
        ]

    def _close_text(self) -> list[bytes]:
        item, self.text = self.text, None
        if item is None:
            return []
        text = "".join(item.text)
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        part = message_item(item.id, text)["content"][0]
        return [
            self._event("response.output_text.done", **where, text=text, logprobs=[]),
            self._event("response.content_part.done", **where, part=part),
            self._event("response.output_item.done", output_index=item.index, item=self._done(item)),
        ]

    def _done(self, item: _Item) -> dict[str, Any]:
        if item.kind == "message":
            return message_item(item.id, "".join(item.text))
        return call_item(item.id, item.call_id, item.name, "".join(item.text))

    def _text(self, piece: str) -> list[bytes]:
        out: list[bytes] = []
        if self.text is None:
            item = self.text = _Item(
                len(self.items), f"msg_{self.ctx.request_id}_{len(self.items)}", "message"
            )
            self.items.append(item)
            added = message_item(item.id, "", "in_progress")
            added["content"] = []
            out.append(self._event("response.output_item.added", output_index=item.index, item=added))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
            out.append(self._event("response.content_part.added", **where, part=part))
        item = self.text
        item.text.append(piece)
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        out.append(self._event("response.output_text.delta", **where, delta=piece, logprobs=[]))
        return out

    def _call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0)
        fn = _dict(call.get("function"))
        item = self.calls.get(index)
        if item is None:
            out += self._close_text()
            item = _Item(len(self.items), f"fc_{self.ctx.request_id}_{len(self.items)}", "function_call")
            item.call_id, item.name = str(call.get("id") or ""), str(fn.get("name") or "")
            self.items.append(item)
            self.calls[index] = item
            added = call_item(item.id, item.call_id, item.name, "", "in_progress")
            out.append(self._event("response.output_item.added", output_index=item.index, item=added))
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.text.append(arguments)
            where = {"item_id": item.id, "output_index": item.index}
            out.append(self._event("response.function_call_arguments.delta", **where, delta=arguments))
        return out

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = self._start(chunk) if not self.rid else []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = _dict(choice.get("delta"))
            for piece in (delta.get("content"), delta.get("refusal")):
                if isinstance(piece, str) and piece:
                    out += self._text(piece)
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out += self._call(call)
            if choice.get("finish_reason") is not None:
                self.finish = choice["finish_reason"]
        return out

    def _end(self) -> list[bytes]:
        out = self._close_text()
        for item in self.items:
            if item.kind == "function_call":
                arguments = "".join(item.text)
                where = {"item_id": item.id, "output_index": item.index}
                out.append(self._event("response.function_call_arguments.done", **where, arguments=arguments))
                out.append(
                    self._event("response.output_item.done", output_index=item.index, item=self._done(item))
                )
        doc = self._envelope("completed")
        doc["output"] = [self._done(item) for item in self.items]
        doc["usage"] = usage(self.ctx)
        _finish(doc, self.finish)
        kind = "response.completed" if doc["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, response=doc))
        return out

    def _error(self, error: dict[str, Any]) -> list[bytes]:
        out = self._start({}) if not self.rid else []
        code, message = str(error.get("code") or "error"), str(error.get("message") or "stream failed")
        out.append(self._event("error", code=code, message=message, param=error.get("param")))
        doc = self._envelope("failed")
        doc["output"] = [self._done(item) for item in self.items]
        doc["error"] = {"code": code, "message": message}
        doc["usage"] = usage(self.ctx)
        out.append(self._event("response.failed", response=doc))
        return out

    def feed(self, data: bytes) -> bytes:
        """The Responses events for the chat SSE bytes written (whole events)."""
        self.buffer += data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out: list[bytes] = []
        while b"\n\n" in self.buffer:
            event, self.buffer = self.buffer.split(b"\n\n", 1)
            lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            payload = b"\n".join(lines)
            if not payload or self.ended:
                continue
            if payload.strip() == b"[DONE]":
                self.ended = True
                out += self._end()
                continue
            try:
                chunk = json.loads(payload)
            except ValueError:
                continue  # the relay has checked every event; nothing else reaches here
            if not isinstance(chunk, dict):
                continue
            if isinstance(chunk.get("error"), dict):
                self.ended = True
                out += self._error(chunk["error"])
            else:
                out += self._chunk(chunk)
        return b"".join(out)


class ResponsesStream(web.StreamResponse):
    """The client's stream: what the relay writes (chat chunks, in-band errors, `[DONE]`) goes
    out as Responses events. The rendering wraps `write` after `prepare`, outside the audit's
    hashing wrapper (audit.hash_stream), so the audited hash is of the bytes the client got."""

    def __init__(self, ctx: Ctx, headers: dict[str, str]) -> None:
        super().__init__(status=200, headers=headers)
        self._renderer = Renderer(ctx)

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared:
            return await super().prepare(request)
        writer = await super().prepare(request)
        inner = self.write

        async def rendered(data: bytes | bytearray | memoryview) -> None:
            out = self._renderer.feed(bytes(data))
            if out:
                await inner(out)

        self.write = rendered  # type: ignore[method-assign]
        return writer
