"""OpenAI's Responses API as an upstream: the request passed through, the answer read back in
the chat completion form the gateway carries inside (see responses.py).

Why read it back as chat: usage validation and settlement, output PII scanning, the gateway's
own output count, the cache and the stream relay all work on one form; reading the upstream's
Responses answer into it here (the text, the function calls, the finish reason and the usage)
keeps those written once, and `responses_render.py` renders the client's Responses answer from
it. What the chat form cannot hold is not relayed: reasoning items (their summaries and
encrypted content) and output annotations (docs/gateway.md, "Responses API").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from llmplatform.gateway import sse
from llmplatform.gateway.errors import error_body
from llmplatform.gateway.providers.base import Failure, StreamFailed, Target

INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
"""Responses `incomplete_details.reason` -> chat finish_reason."""


def usage(raw: Any) -> dict[str, Any] | None:
    """Chat usage from Responses usage. A value that is not a count is passed on as it is, so
    accounting.valid_usage rejects it (as for any upstream)."""
    if not isinstance(raw, dict):
        return None if raw is None else {"prompt_tokens": raw}
    prompt, completion = raw.get("input_tokens"), raw.get("output_tokens")
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if isinstance(prompt, int) and isinstance(completion, int):
        out["total_tokens"] = prompt + completion
    details = raw.get("input_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        out["prompt_tokens_details"] = {"cached_tokens": details["cached_tokens"]}
    return out


def finish_reason(response: dict[str, Any], calls: bool) -> str:
    if calls:
        return "tool_calls"
    details = response.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    if response.get("status") == "incomplete":
        return INCOMPLETE.get(str(reason), "length")
    return "stop"


def chat_completion(doc: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion for a Responses `response` object."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in doc.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or []:
                text = part.get("text", part.get("refusal")) if isinstance(part, dict) else None
                if isinstance(text, str):
                    texts.append(text)
        elif item.get("type") == "function_call":
            fn = {"name": str(item.get("name", "")), "arguments": str(item.get("arguments", ""))}
            calls.append({"id": str(item.get("call_id", "")), "type": "function", "function": fn})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    out: dict[str, Any] = {
        "id": str(doc.get("id", "")),
        "object": "chat.completion",
        "created": doc.get("created_at") if isinstance(doc.get("created_at"), int) else int(time.time()),
        "model": str(doc.get("model", "")),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(doc, bool(calls)),
                "logprobs": None,
            }
        ],
    }
    found = usage(doc.get("usage"))
    if found is not None:
        out["usage"] = found
    return out


def _index(value: Any) -> int:
    """An event's `output_index` (0 when it is not an integer: the reader never raises on it)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _unreadable(detail: str) -> Failure:
    body = json.dumps(error_body(502, "the upstream sent an unreadable Responses answer")).encode()
    return Failure("status", 502, body, detail)


def from_response(status: int, raw: bytes) -> bytes | Failure:
    if status != 200:
        return Failure("status", status, raw)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        return _unreadable(f"not JSON: {exc}")
    if not isinstance(doc, dict) or doc.get("error") or doc.get("status") == "failed":
        return _unreadable("not a completed response object")
    return json.dumps(chat_completion(doc)).encode()


def _error(payload: dict[str, Any]) -> bytes:
    """An OpenAI error body for an `error` or `response.failed` event."""
    if payload.get("type") == "response.failed":
        err = (payload.get("response") or {}).get("error")
    else:  # an `error` event carries code and message itself
        err = payload
    err = err if isinstance(err, dict) else {}
    message = str(err.get("message") or "the upstream's response failed")
    return json.dumps(error_body(502, message, code=str(err.get("code") or "upstream_error"))).encode()


@dataclass
class StreamReader:
    """Responses SSE events in, chat.completion.chunk events out (ending with a usage-only
    chunk and `[DONE]`, as an OpenAI chat upstream asked for usage sends)."""

    created: int
    id: str = ""
    model: str = ""
    started: bool = False
    calls: dict[int, int] = field(default_factory=dict)
    """Responses output_index of a function call -> chat tool_calls index."""
    failed_status: int | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse.event(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            }
        )

    def feed(self, event: bytes) -> list[bytes]:
        sse.check_openai_event(event)  # a line that is not SSE, or data that is not an object
        data = b"".join(line[5:] for line in event.splitlines() if line.startswith(b"data:"))
        if not data.strip():
            return []
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"responses stream event is not JSON: {data[:200]!r}") from exc
        if not isinstance(payload, dict):
            raise ValueError("responses stream event is not a JSON object")
        kind = payload.get("type")
        if kind == "response.created":
            response = payload.get("response") or {}
            self.id, self.model = str(response.get("id", "")), str(response.get("model", ""))
            self.started = True
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            return [self._chunk({"content": str(payload.get("delta", ""))})]
        if kind == "response.output_item.added":
            item = payload.get("item") or {}
            if item.get("type") != "function_call":
                return []
            index = self.calls[_index(payload.get("output_index"))] = len(self.calls)
            fn = {"name": str(item.get("name", "")), "arguments": ""}
            call = {"index": index, "id": str(item.get("call_id", "")), "type": "function", "function": fn}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "response.function_call_arguments.delta":
            index = self.calls.get(_index(payload.get("output_index")), 0)
            call = {"index": index, "function": {"arguments": str(payload.get("delta", ""))}}
            return [self._chunk({"tool_calls": [call]})]
        if kind in ("response.completed", "response.incomplete"):
            response = payload.get("response") or {}
            last = self._chunk({}, finish_reason(response, bool(self.calls)))
            found = usage(response.get("usage"))
            if found is None:
                return [last, sse.DONE]
            tail = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
            }
            return [last, sse.event({**tail, "choices": [], "usage": found}), sse.DONE]
        if kind in ("error", "response.failed"):
            body = _error(payload)
            if not self.started:
                raise StreamFailed(502, body)
            self.failed_status = 502
            return [sse.data_event(body), sse.DONE]
        return []  # in_progress, content parts, reasoning, *.done events: nothing new


class ResponsesAdapter:
    """The upstream's Responses API (`<base>/responses`), for OpenAI models not self-hosted."""

    default_output_tokens: int | None = None

    def endpoints(self, base: str, capabilities: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
        return {"responses": base + "/responses"}, capabilities

    def build_request(
        self, body: dict[str, Any], target: Target, stream: bool, request_id: str
    ) -> tuple[bytes, dict[str, str]]:
        payload = {**body, "model": target.upstream_model, "store": False}
        headers = {"content-type": "application/json", "x-request-id": request_id}
        if target.api_key:
            headers["authorization"] = f"Bearer {target.api_key}"
        return json.dumps(payload).encode(), headers

    def parse_response(self, status: int, raw: bytes) -> bytes | Failure:
        return from_response(status, raw)

    def stream_error(self, status: int, raw: bytes) -> Failure:
        return Failure("status", status, raw)

    def stream_translator(self) -> StreamReader:
        return StreamReader(int(time.time()))


PASSTHROUGH = ResponsesAdapter()
