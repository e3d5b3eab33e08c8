"""Translation between OpenAI chat completions and Anthropic's Messages API.

Why a translator rather than a second client surface: applications speak OpenAI to the gateway
whichever model serves them, so a `provider: anthropic` LLMModel is just another candidate in a
tier, with the same fallback, limits, metrics and audit. This module holds the whole mapping as
pure functions (no I/O, no clock): the request going up, the JSON answer and the SSE stream
coming back, and Anthropic's errors turned into the failure kinds and OpenAI error bodies the
rest of the gateway already understands. `AnthropicAdapter` at the end is what the gateway
calls (see providers/base.py). A request that came in through the Messages API itself is not
translated up but passed through (messagesapi.Passthrough, at the adapter's `messages` URL);
its answer and stream are read back here like any other.

Mapping (see docs/gateway.md, "Anthropic models"):
- `system`/`developer` messages are joined into the top-level `system`; `tool` messages become
  `tool_result` blocks in a user turn; consecutive turns of one role are merged into one turn.
- `max_tokens` is required upstream: `max_completion_tokens`, else `max_tokens`, else the
  model's `maxOutputTokens`, else DEFAULT_MAX_TOKENS.
- `user` goes up as its SHA-256 in `metadata.user_id`: an opaque id, as Anthropic asks.
- `temperature` and `top_p` are accepted from clients but not sent: the current Messages API
  types carry no sampling parameters and newer Claude models answer 400 to them.
- Anthropic's `usage.input_tokens` excludes prompt-cache reads and writes; prompt tokens here
  are the sum of all three, so budgets and cost count every token the prompt used.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from llmplatform.gateway import sse
from llmplatform.gateway.errors import GatewayError, error_body
from llmplatform.gateway.providers.base import Failure, StreamFailed, Target

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Sent as `max_tokens` when neither the request nor the model's maxOutputTokens sets one."""

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""Anthropic error type -> the HTTP status Anthropic uses for it (for errors inside a stream)."""

OVERLOADED = 529
"""Anthropic's "overloaded" status. The gateway treats it as 503 so a policy's retryOn, the
circuit breaker and the client see the status OpenAI-style upstreams use for the same thing."""


def _bad(message: str, param: str | None = "messages") -> GatewayError:
    return GatewayError(400, message, code="invalid_request", param=param)


# -- request ------------------------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    """Plain text of a system/developer/tool message: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise _bad(f"{where}: only text content parts are supported here")
            texts.append(part["text"])
        return "\n".join(texts)
    if content is None:
        return ""
    raise _bad(f"{where}: content must be a string or a list of content parts")


def _image_block(url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str):
        raise _bad(f"{where}: image_url.url must be a string")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or media_type not in IMAGE_TYPES:
            raise _bad(
                f"{where}: an image data URL must be data:<type>;base64,... with type one of "
                f"{', '.join(sorted(IMAGE_TYPES))}"
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _bad(f"{where}: image_url.url must be an http(s) URL or a base64 data URL")


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"{where}: content must be a string or a list of content parts")
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            if part["text"]:
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            blocks.append(_image_block(part["image_url"].get("url"), f"{where}.content[{j}]"))
        else:
            raise _bad(
                f"{where}.content[{j}]: content part type {kind!r} is not supported by anthropic models"
            )
    return blocks


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, list):
        for part in content:  # OpenAI allows text and refusal parts in assistant messages
            text = part.get("text", part.get("refusal")) if isinstance(part, dict) else None
            if not isinstance(text, str):
                raise _bad(f"{where}: assistant content parts must be text")
            if text:
                blocks.append({"type": "text", "text": text})
    elif isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif content is not None:
        raise _bad(f"{where}: content must be a string, a list of parts or null")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise _bad(f"{where}.tool_calls must be a list")
    for j, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(fn, dict)
            or not isinstance(fn.get("name"), str)
            or not isinstance(call.get("id"), str)
        ):
            raise _bad(f"{where}.tool_calls[{j}] needs an id and function.name")
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except (TypeError, ValueError) as exc:
            raise _bad(f"{where}.tool_calls[{j}].function.arguments is not valid JSON") from exc
        if not isinstance(arguments, dict):
            raise _bad(f"{where}.tool_calls[{j}].function.arguments must be a JSON object")
        blocks.append({"type": "tool_use", "id": call["id"], "name": fn["name"], "input": arguments})
    return blocks


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("tools must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _bad(f"tools[{i}]: only function tools with a name are supported", "tools")
        params = fn.get("parameters") or {}
        if not isinstance(params, dict):
            raise _bad(f"tools[{i}].function.parameters must be a JSON schema object", "tools")
        entry: dict[str, Any] = {"name": fn["name"], "input_schema": {**params, "type": "object"}}
        if isinstance(fn.get("description"), str):
            entry["description"] = fn["description"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any]
    if choice is None:
        result = {"type": "auto"}
    elif choice in ("auto", "none"):
        result = {"type": choice}
    elif choice == "required":
        result = {"type": "any"}
    elif (
        isinstance(choice, dict)
        and choice.get("type") == "function"
        and isinstance((choice.get("function") or {}).get("name"), str)
    ):
        result = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise _bad(
            "tool_choice must be auto, none, required or {type: function, function: {name}}", "tool_choice"
        )
    if parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    elif choice is None:
        return None  # Anthropic's default is auto; say nothing
    return result


def _merge(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Append a turn, merging it into the previous one when the role repeats (tool results
    following each other, a user message after tool results, ...)."""
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def to_messages_request(body: dict[str, Any], model: str, max_output_tokens: int | None) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat completions body; GatewayError(400) for what
    Anthropic cannot express."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(body["messages"]):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _bad(f"{where} must be an object")
        role = message.get("role")
        if role in ("system", "developer"):
            text = _text_of(message.get("content"), where)
            if text:
                system.append(text)
        elif role == "user":
            _merge(turns, "user", _user_blocks(message.get("content"), where))
        elif role == "assistant":
            _merge(turns, "assistant", _assistant_blocks(message, where))
        elif role == "tool":
            if not isinstance(message.get("tool_call_id"), str):
                raise _bad(f"{where}.tool_call_id is required for tool messages")
            result = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": _text_of(message.get("content"), where),
            }
            _merge(turns, "user", [result])
        else:
            raise _bad(f"{where}.role {role!r} is not supported by anthropic models")
    if not turns:
        raise _bad("anthropic models need at least one user or assistant message")
    n = body.get("n")
    if n is not None and n != 1:
        raise _bad("anthropic models return one choice; n must be 1", "n")

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens or max_output_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        out["system"] = "\n\n".join(system)
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list):
        if not all(isinstance(s, str) for s in stop):
            raise _bad("stop must be a string or a list of strings", "stop")
        if stop:
            out["stop_sequences"] = stop
    elif stop is not None:
        raise _bad("stop must be a string or a list of strings", "stop")
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    elif body.get("tool_choice") not in (None, "none", "auto"):
        raise _bad("tool_choice needs tools", "tool_choice")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise _bad("response_format.json_schema.schema must be an object", "response_format")
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        raise _bad("anthropic models support response_format json_schema, not json_object", "response_format")
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": opaque_user(body["user"])}
    if body.get("stream"):
        out["stream"] = True
    return out


def opaque_user(user: str) -> str:
    """The end-user id sent as `metadata.user_id`, whichever API the request came in by:
    Anthropic asks for an opaque id there, and the id a client knows is often an e-mail address."""
    return hashlib.sha256(user.encode()).hexdigest()


def headers(api_key: str | None, request_id: str) -> dict[str, str]:
    out = {"content-type": "application/json", "anthropic-version": API_VERSION, "x-request-id": request_id}
    if api_key:
        out["x-api-key"] = api_key
    return out


# -- response -----------------------------------------------------------------------------


def usage(raw: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage from Anthropic usage (cache reads and writes count as prompt tokens)."""
    cached = raw.get("cache_read_input_tokens") or 0
    parts = (raw.get("input_tokens"), cached, raw.get("cache_creation_input_tokens") or 0)
    # A value that is not a count (a string, a float, a bool, missing) is passed on as it is,
    # so accounting.valid_usage rejects it; adding it up here would crash or hide it.
    bad = [p for p in parts if not isinstance(p, int) or isinstance(p, bool)]
    prompt: Any = bad[0] if bad else sum(parts)
    completion = raw.get("output_tokens")
    if bad or not isinstance(completion, int) or isinstance(completion, bool):
        return {"prompt_tokens": prompt, "completion_tokens": completion}
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def stopped_by(reason: Any, sequence: Any) -> dict[str, Any]:
    """`{"stop_reason": <the stop sequence>}` for a choice that a client's stop sequence ended
    (the field vLLM's chat answers carry for the same thing), else nothing: so a Messages client
    is told `stop_sequence` and which one, whichever API the answer went through."""
    return {"stop_reason": sequence} if reason == "stop_sequence" and isinstance(sequence, str) else {}


def to_chat_completion(message: dict[str, Any], created: int) -> dict[str, Any]:
    """An OpenAI chat.completion for an Anthropic Message."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": json.dumps(block.get("input") or {})},
                }
            )
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        reply["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": reply,
        "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "", "stop"),
        "logprobs": None,
    }
    return {
        "id": message.get("id", ""),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model", ""),
        "choices": [{**choice, **stopped_by(message.get("stop_reason"), message.get("stop_sequence"))}],
        "usage": usage(message.get("usage") or {}),
    }


# -- errors -------------------------------------------------------------------------------


def gateway_status(status: int) -> int:
    return 503 if status == OVERLOADED else status


def error_from(status: int, raw: bytes) -> tuple[int, bytes]:
    """(status for the gateway, OpenAI error body) for an Anthropic error answer."""
    kind, message = "api_error", f"anthropic upstream answered {status}"
    try:
        err = json.loads(raw).get("error")
        if isinstance(err, dict):
            kind = str(err.get("type") or kind)
            message = str(err.get("message") or message)
    except (ValueError, AttributeError):
        pass
    mapped = gateway_status(status)
    return mapped, json.dumps(error_body(mapped, message, code=kind)).encode()


# -- stream -------------------------------------------------------------------------------


DONE = sse.DONE


@dataclass
class StreamTranslator:
    """Anthropic SSE events in, OpenAI `chat.completion.chunk` SSE events out.

    `feed` takes one event as the gateway's reader returns it (its lines, without the blank
    separator) and returns the OpenAI events it becomes, in the same framing. The output always
    ends with a usage-only chunk and `[DONE]`, as an OpenAI upstream asked for
    `include_usage` would send; the gateway drops the usage chunk when its client did not ask.
    """

    created: int
    id: str = ""
    model: str = ""
    started: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    tools: dict[int, int] = field(default_factory=dict)
    """Anthropic content block index -> OpenAI tool_calls index."""
    failed_status: int | None = None
    """Set (to the gateway status) when an `error` event broke the stream after it started."""

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        return sse.event({**chunk, "choices": choices, **extra})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None, **extra}
        return self._event([choice])

    def feed(self, event: bytes) -> list[bytes]:
        data = b"".join(line[5:] for line in event.splitlines() if line.startswith(b"data:"))
        if not data.strip():
            return []  # comments, bare `event:` lines
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"anthropic stream event is not JSON: {data[:200]!r}") from exc
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message") or {}
            self.id, self.model, self.started = message.get("id", ""), message.get("model", ""), True
            self.usage.update(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tools[payload.get("index", 0)] = len(self.tools)
                call = {"index": index, "id": block.get("id"), "type": "function"}
                call["function"] = {"name": block.get("name"), "arguments": ""}
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [self._chunk({"content": delta.get("text", "")})]
            if delta.get("type") == "input_json_delta":
                index = self.tools.get(payload.get("index", 0), 0)
                args = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
                return [self._chunk({"tool_calls": [args]})]
            return []  # thinking, signature and citation deltas have no OpenAI counterpart
        if kind == "message_delta":
            self.usage.update({k: v for k, v in (payload.get("usage") or {}).items() if v is not None})
            delta = payload.get("delta") or {}
            reason = delta.get("stop_reason")
            stopped = stopped_by(reason, delta.get("stop_sequence"))
            return [self._chunk({}, FINISH_REASONS.get(reason or "", "stop"), **stopped)]
        if kind == "message_stop":
            return [self._event([], usage=usage(self.usage)), DONE]
        if kind == "error":
            err = payload.get("error") or {}
            status = ERROR_STATUS.get(str(err.get("type")), 500)
            mapped, body = error_from(status, data)
            if not self.started:
                raise StreamFailed(mapped, body)
            self.failed_status = mapped
            return [sse.data_event(body), DONE]
        return []  # ping, content_block_stop and event types added later


# -- the adapter ---------------------------------------------------------------------------


def from_message(status: int, raw: bytes) -> bytes | Failure:
    """An Anthropic answer as an OpenAI chat.completion body, or the Failure it stands for."""
    if status != 200:
        return Failure("status", *error_from(status, raw))
    try:
        return json.dumps(to_chat_completion(json.loads(raw), int(time.time()))).encode()
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        body = json.dumps(error_body(502, "anthropic upstream sent an unreadable message")).encode()
        return Failure("status", 502, body, f"unreadable anthropic message: {exc}")


class AnthropicAdapter:
    default_output_tokens: int | None = DEFAULT_MAX_TOKENS
    """The max_tokens the gateway sends when the request and the model set none."""

    def endpoints(self, base: str, capabilities: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
        # the Messages API is chat only; `messages`: the URL a Messages request is passed through
        # to unchanged (messagesapi/), where other providers' models get it translated
        return {"chat": base + "/messages", "messages": base + "/messages"}, capabilities & {"chat"}

    def build_request(
        self, body: dict[str, Any], target: Target, stream: bool, request_id: str
    ) -> tuple[bytes, dict[str, str]]:
        upstream = to_messages_request(body, target.upstream_model, target.max_output_tokens)
        return json.dumps(upstream).encode(), headers(target.api_key, request_id)

    def parse_response(self, status: int, raw: bytes) -> bytes | Failure:
        return from_message(status, raw)

    def stream_error(self, status: int, raw: bytes) -> Failure:
        return Failure("status", *error_from(status, raw))

    def stream_translator(self) -> StreamTranslator:
        return StreamTranslator(int(time.time()))
