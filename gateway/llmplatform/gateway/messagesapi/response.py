"""Chat completions answers, chunks and errors, as the Messages API's.

Why at the edge: the whole completion path (governance's output scanning, usage validation,
the cache, the in-band error of a broken stream) works on OpenAI-shaped answers, whichever
provider served them. Only what goes to a `/v1/messages` client is translated, here, as the
last step: a JSON answer becomes a `Message`, a stream of `chat.completion.chunk` events
becomes Anthropic's `message_start`, `content_block_*`, `message_delta`, `message_stop`
events, and an OpenAI error body becomes `{"type": "error", "error": {"type", "message"}}`.
The mappings are the inverse of the ones `providers/anthropic.py` applies going the other
way, and are taken from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmplatform.gateway.providers.anthropic import ERROR_STATUS, FINISH_REASONS

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
STOP_REASONS["content_filter"] = "refusal"
STOP_REASONS["function_call"] = "tool_use"
assert all(FINISH_REASONS[v] == k for k, v in STOP_REASONS.items() if k != "function_call")

ERROR_TYPES = {status: kind for kind, status in ERROR_STATUS.items()}
"""HTTP status -> Anthropic error type (the inverse of the provider's table), plus the statuses
the gateway itself answers with."""
ERROR_TYPES.update({408: "timeout_error", 405: "invalid_request_error", 502: "api_error"})
ERROR_TYPES[503] = "overloaded_error"  # the gateway's 503 is the provider's 529
ERROR_TYPES[422] = "invalid_request_error"


OPENAI_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "rate_limit_error": 429,
    "server_error": 500,
    "upstream_error": 502,
    "service_unavailable": 503,
    "timeout": 504,
}
"""The gateway's OpenAI error `type` -> its status (errors.py), for in-band stream errors,
which carry no status line of their own."""


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_payload(status: int | None, err: Any) -> dict[str, Any]:
    """`{"type": "error", "error": {...}}` for an OpenAI error object. An Anthropic upstream's
    own error type survives as the `code` the provider adapter put it in; otherwise the type
    follows the status (or, in a stream, the OpenAI type)."""
    err = err if isinstance(err, dict) else {}
    message = err.get("message") if isinstance(err.get("message"), str) else f"HTTP {status}"
    code = err.get("code")
    if isinstance(code, str) and code in ERROR_STATUS:
        kind = code
    else:
        kind = error_type(status or OPENAI_STATUS.get(str(err.get("type")), 500))
    return {"type": "error", "error": {"type": kind, "message": message}}


def error(status: int, raw: bytes | None) -> bytes:
    """An Anthropic error body for a gateway (OpenAI-shaped) error body of this status."""
    try:
        err = json.loads(raw or b"").get("error")
    except (ValueError, AttributeError):
        err = None
    return json.dumps(error_payload(status, err)).encode()


def usage(raw: Any) -> dict[str, Any]:
    """Anthropic usage for OpenAI usage: input excludes cache reads, which are counted apart."""
    if not isinstance(raw, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    prompt = prompt if isinstance(prompt, int) and not isinstance(prompt, bool) else 0
    cached = cached if isinstance(cached, int) and 0 <= cached <= prompt else 0
    out = {"input_tokens": prompt - cached, "output_tokens": completion if isinstance(completion, int) else 0}
    if cached:
        out["cache_read_input_tokens"] = cached
    return out


def _input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as a tool_use input; arguments that are not a JSON object (a
    model's broken output) are kept whole under `_arguments` rather than lost."""
    try:
        parsed = json.loads(arguments or "{}")
    except (TypeError, ValueError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_arguments": arguments}


def stop(choice: dict[str, Any]) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) of a choice that has finished: `stop_sequence` when a stop
    sequence ended it and the answer says which (providers/anthropic.stopped_by)."""
    finish = choice.get("finish_reason") or "stop"
    sequence = choice.get("stop_reason")
    if finish == "stop" and isinstance(sequence, str):
        return "stop_sequence", sequence
    return STOP_REASONS.get(finish, "end_turn"), None


def message(completion: dict[str, Any]) -> dict[str, Any]:
    """A Message for a chat.completion (its first choice: the Messages API has one)."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reply = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = reply.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in reply.get("tool_calls") or []:
        fn = call.get("function") or {}
        block = {"type": "tool_use", "id": call.get("id") or "", "name": fn.get("name") or ""}
        content.append({**block, "input": _input(fn.get("arguments"))})
    reason, sequence = stop(choice)
    return {
        "id": str(completion.get("id") or ""),
        "type": "message",
        "role": "assistant",
        "model": str(completion.get("model") or ""),
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage(completion.get("usage")),
    }


def json_answer(status: int, raw: bytes, charged: dict[str, Any] | None = None) -> bytes:
    """The body a /v1/messages client gets for the gateway's JSON answer of this status;
    `charged`: the usage to show instead of the answer's (the upstream's was not believed)."""
    if status != 200:
        return error(status, raw)
    try:
        completion = json.loads(raw)
        if isinstance(completion, dict):
            out = message(completion)
            if charged is not None:
                out["usage"] = charged
            return json.dumps(out, ensure_ascii=False).encode()
    except ValueError:
        pass
    return error(502, json.dumps({"error": {"message": "the upstream answer could not be read"}}).encode())


# -- stream -------------------------------------------------------------------------------

_SPLIT = re.compile(rb"\r?\n\r?\n")


def sse(kind: str, payload: dict[str, Any]) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"
    )


@dataclass
class StreamTranslator:
    """Chat chunk SSE bytes in (as the relay writes them, any number of events per write), the
    Messages API's events out. The chunk stream always carries usage (the translated request asks
    for it), which becomes `message_delta.usage`; `[DONE]` becomes `message_stop`; an in-band
    error becomes an `error` event."""

    buffer: bytes = b""
    started: bool = False
    ended: bool = False
    index: int = -1
    open: str | None = None
    """The type of the content block open at `index` (None: none is)."""
    tools: dict[int, tuple[int, str]] = field(default_factory=dict)
    """Chat tool_calls index -> (content block index, call id)."""
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: dict[str, Any] = field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0})
    charged: Callable[[], dict[str, Any] | None] | None = None
    """At the end: the usage to show instead of the stream's (the upstream's was not believed)."""

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        *events, self.buffer = _SPLIT.split(self.buffer)
        return b"".join(self._event(e) for e in events)

    def _event(self, event: bytes) -> bytes:
        payload = b"".join(line[5:].strip() for line in event.splitlines() if line.startswith(b"data:"))
        if self.ended or not payload:
            return b""
        if payload == b"[DONE]":
            return self._finish()
        try:
            chunk = json.loads(payload)
        except ValueError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        if isinstance(chunk.get("error"), dict):
            self.ended = True
            return sse("error", error_payload(None, chunk["error"]))
        out = self._start(chunk) if not self.started else b""
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._open("text", {"type": "text", "text": ""})
                out += self._delta({"type": "text_delta", "text": delta["content"]})
            for call in delta.get("tool_calls") or []:
                out += self._tool(call)
            if choice.get("finish_reason"):
                out += self._close()
                self.stop_reason, self.stop_sequence = stop(choice)
        return out

    def _start(self, chunk: dict[str, Any]) -> bytes:
        self.started = True
        msg: dict[str, Any] = {
            "id": str(chunk.get("id") or ""),
            "type": "message",
            "role": "assistant",
            "model": str(chunk.get("model") or ""),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return sse("message_start", {"type": "message_start", "message": msg}) + sse("ping", {"type": "ping"})

    def _open(self, kind: str, block: dict[str, Any], force: bool = False) -> bytes:
        if self.open == kind and not force:
            return b""
        out = self._close()
        self.index += 1
        self.open = kind
        return out + sse(
            "content_block_start",
            {"type": "content_block_start", "index": self.index, "content_block": block},
        )

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse(
            "content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta}
        )

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _tool(self, call: Any) -> bytes:
        if not isinstance(call, dict):
            return b""
        fn = call.get("function") or {}
        at = call.get("index", 0)
        out = b""
        known = self.tools.get(at)
        # a new call: a new index, or a new id at a known one (some servers repeat the id in
        # every delta of a call, which is not a new call)
        if known is None or (call.get("id") and call["id"] != known[1]):
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": fn.get("name") or "",
                "input": {},
            }
            out = self._open("tool_use", block, force=True)
            self.tools[at] = (self.index, block["id"])
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            # to the call's own block, even when another has opened since (interleaved calls)
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out += sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": self.tools[at][0], "delta": delta},
            )
        return out

    def _finish(self) -> bytes:
        self.ended = True
        out = self._close()
        delta = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": self.stop_sequence}
        usage = (self.charged() if self.charged is not None else None) or self.usage
        out += sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        return out + sse("message_stop", {"type": "message_stop"})
