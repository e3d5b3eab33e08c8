"""An Anthropic Messages request: checked, sent up as it is, or translated to chat completions.

Why both: the body is the Messages request itself all along the completion path (governance
scans and redacts every string of *it*), and each upstream attempt decides how it leaves
(messagesapi.MessagesDialect.adapter):
- to a model whose provider speaks the Messages API (Anthropic) it is passed through
  (`upstream_body`): the client's request with the routed model's upstream name, so what a
  round trip through chat completions would lose or reshape (system and tool result text
  blocks, which it joins; `is_error` on a tool result; `thinking`; string content) reaches the
  model as the client wrote it;
- to any other model it is translated (`to_chat`) into the chat completions body that the
  model's adapter sends as for any chat request.

`to_chat` is also the check: every request is translated once on arrival, so a request that a
fallback could not carry is refused before any upstream call, whichever model it is routed to.
Only the fields listed here are accepted, so an OpenAI-only parameter (`n`, `best_of`,
`prediction`, ...) or an Anthropic one that bills beyond the worst case (server tools,
`mcp_servers`, `service_tier`, ...) cannot ride along, and every string that leaves the gateway
is one the governance scan saw. A field or block that chat completions cannot express is
refused with a 400 that names it, never dropped silently; the exceptions, which change no
answer's shape, are listed in `IGNORED` and `NOT_SENT`.
"""

from __future__ import annotations

import json
from typing import Any

from llmplatform.gateway.bodies import MAX_USER
from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.providers.anthropic import IMAGE_TYPES, opaque_user

IGNORED = frozenset({"cache_control"})
"""Keys accepted on any block or tool and not forwarded: prompt-caching hints change what a
request costs at Anthropic, never the answer (and the gateway's cache is its own)."""
NOT_SENT = ("temperature", "top_p")
"""Accepted (older clients send them, and the response cache keys on temperature 0) and sent
to models that get the request translated, but never to a model the request is passed through
to: the current Messages API defines no sampling parameters and newer Claude models answer 400
to them (as providers/anthropic.py leaves them out of a translated request)."""
FIELDS = frozenset(
    {"model", "messages", "max_tokens", "system", "stop_sequences", "metadata", *NOT_SENT}
    | {"tools", "tool_choice", "stream", "thinking", "output_config"}
)
"""Top-level fields accepted; any other is refused by name."""


def bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, code="invalid_request", param=param)


def _keys(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    # a null is no value: SDKs serialise a block's unset optional fields as null
    extra = sorted(k for k, v in obj.items() if k not in allowed and k not in IGNORED and v is not None)
    if extra:
        raise bad(f"{where}: {', '.join(map(repr, extra))} is not supported by this gateway", where)


def _text_block(block: dict[str, Any], where: str) -> str:
    _keys(block, {"type", "text", "citations"}, where)
    if not isinstance(block.get("text"), str):
        raise bad(f"{where}.text must be a string", where)
    if block.get("citations"):
        raise bad(f"{where}.citations is not supported by this gateway", where)
    return str(block["text"])


def _system(system: Any) -> str | list[dict[str, Any]]:
    """A string, or a list of text blocks kept as text parts: the governance scan then reads
    them as consecutive pieces of one text, so a value split across two blocks is still found."""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise bad("system must be a string or a list of text blocks", "system")
    parts = []
    for i, block in enumerate(system):
        where = f"system[{i}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise bad(f"{where}: only text blocks are supported in system", where)
        parts.append({"type": "text", "text": _text_block(block, where)})
    return parts


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    _keys(block, {"type", "source"}, where)
    source = block.get("source")
    if not isinstance(source, dict):
        raise bad(f"{where}.source must be an object", where)
    if source.get("type") == "base64":
        media, data = source.get("media_type"), source.get("data")
        if media not in IMAGE_TYPES or not isinstance(data, str):
            raise bad(
                f"{where}.source: base64 images need data and a media_type of "
                f"{', '.join(sorted(IMAGE_TYPES))}",
                where,
            )
        url = f"data:{media};base64,{data}"
    elif source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise bad(f"{where}.source.type must be base64 or url", where)
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_result(block: dict[str, Any], where: str) -> dict[str, Any]:
    _keys(block, {"type", "tool_use_id", "content", "is_error"}, where)
    if not isinstance(block.get("tool_use_id"), str):
        raise bad(f"{where}.tool_use_id must be a string", where)
    content = block.get("content", "")
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad(f"{where}.content[{j}]: only text blocks are supported in tool results", where)
            parts.append({"type": "text", "text": _text_block(part, f"{where}.content[{j}]")})
        content = parts
    elif not isinstance(content, str):
        raise bad(f"{where}.content must be a string or a list of text blocks", where)
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}


def _user(content: Any, where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results first (as `tool` messages), then its other blocks."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise bad(f"{where}.content must be a string or a list of content blocks", where)
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        assert kind is None or isinstance(block, dict)
        if kind == "text":
            parts.append({"type": "text", "text": _text_block(block, at)})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind == "tool_result":
            results.append(_tool_result(block, at))
        else:
            raise bad(f"{at}: content block type {kind!r} is not supported by this gateway", at)
    return results + ([{"role": "user", "content": parts}] if parts or not results else [])


def _assistant(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise bad(f"{where}.content must be a string or a list of content blocks", where)
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text_block(block, at))
        elif kind == "tool_use":
            _keys(block, {"type", "id", "name", "input"}, at)
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise bad(f"{at}: tool_use needs a string id and name", at)
            if not isinstance(block.get("input"), dict):
                raise bad(f"{at}.input must be an object", at)
            arguments = json.dumps(block["input"], ensure_ascii=False)
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
        else:
            raise bad(f"{at}: content block type {kind!r} is not supported by this gateway", at)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise bad("tools must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom":
            # server tools (web search, code execution, ...) run and bill at the provider per
            # call, which neither the translation nor model pricing can express
            raise bad(f"{where}: only custom tools (name, description, input_schema) are supported", where)
        _keys(tool, {"type", "name", "description", "input_schema"}, where)
        schema = tool.get("input_schema")
        if not isinstance(tool.get("name"), str) or not isinstance(schema, dict):
            raise bad(f"{where} needs a string name and an input_schema object", where)
        fn: dict[str, Any] = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise bad("tool_choice.type must be auto, any, tool or none", "tool_choice")
    _keys(choice, {"type", "name", "disable_parallel_tool_use"}, "tool_choice")
    kind = choice["type"]
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise bad("tool_choice of type tool needs a name", "tool_choice")
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completions body for a Messages request body; GatewayError(400) naming the field
    for anything the Messages API would refuse or the translation cannot carry."""
    _keys(body, set(FIELDS), "request")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise bad("model is required", "model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise bad("max_tokens is required and must be a positive integer", "max_tokens")
    messages: list[dict[str, Any]] = []
    if body.get("system") is not None:
        system = _system(body["system"])
        if system:
            messages.append({"role": "system", "content": system})
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise bad("messages must be a non-empty list", "messages")
    for i, turn in enumerate(turns):
        where = f"messages[{i}]"
        if not isinstance(turn, dict):
            raise bad(f"{where} must be an object", where)
        _keys(turn, {"role", "content"}, where)
        if turn.get("role") == "user":
            messages.extend(_user(turn.get("content"), where))
        elif turn.get("role") == "assistant":
            messages.append(_assistant(turn.get("content"), where))
        else:
            raise bad(f"{where}.role must be user or assistant", where)
    out: dict[str, Any] = {"model": body["model"], "messages": messages, "max_tokens": max_tokens}
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad("stop_sequences must be a list of strings", "stop_sequences")
        if stop:
            out["stop"] = stop
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise bad(f"{name} must be a number", name)
            out[name] = value
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise bad("metadata must be an object", "metadata")
        _keys(metadata, {"user_id"}, "metadata")
        user = metadata.get("user_id")
        if user is not None and (not isinstance(user, str) or len(user) > MAX_USER):
            raise bad(f"metadata.user_id must be a string of at most {MAX_USER} characters", "metadata")
        if user:
            out["user"] = user  # an end-user id, honoured only for trustClientUser keys
    thinking = body.get("thinking")
    if thinking is not None and thinking != {"type": "disabled"}:
        raise bad("extended thinking is not supported by this gateway", "thinking")
    config = body.get("output_config")
    if config is not None:
        if not isinstance(config, dict):
            raise bad("output_config must be an object", "output_config")
        _keys(config, {"format"}, "output_config")
        fmt = config.get("format")
        if fmt is not None:
            if (
                not isinstance(fmt, dict)
                or fmt.get("type") != "json_schema"
                or not isinstance(fmt.get("schema"), dict)
            ):
                raise bad("output_config.format must be {type: json_schema, schema: {...}}", "output_config")
            schema = {"name": "output", "schema": fmt["schema"]}
            out["response_format"] = {"type": "json_schema", "json_schema": schema}
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], out)
        if "tools" not in out:
            if out["tool_choice"] != "none":
                raise bad("tool_choice needs tools", "tool_choice")
            del out["tool_choice"]  # nothing to choose from: the same as sending none
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad("stream must be a boolean", "stream")
    if stream:
        # the answer is translated back from chat chunks and always ends with its usage
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# -- passed through ---------------------------------------------------------------------------


def _bare(obj: Any) -> Any:
    """An object of the request (a turn, a block, a tool, ...) without the keys that are not
    forwarded (`IGNORED`) and without nulls (SDKs serialise a returned block's unset fields as
    null); the blocks it holds (a turn's, a tool result's) likewise."""
    if not isinstance(obj, dict):
        return obj
    out = {k: v for k, v in obj.items() if k not in IGNORED and v is not None}
    if isinstance(out.get("content"), list):
        out["content"] = [_bare(block) for block in out["content"]]
    return out


def upstream_body(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The Messages request passed through to a model that speaks it: a checked (`to_chat`)
    body as the governance scan left it (the redacted copy when the route gets one), with
    `model` the routed model's upstream name, no `IGNORED` keys or `NOT_SENT` fields, and
    `metadata.user_id` as the opaque id the provider adapter sends for any end user
    (providers/anthropic.opaque_user)."""
    out = {k: v for k, v in _bare(body).items() if k not in NOT_SENT}
    out["model"] = model
    for name in ("system", "messages", "tools"):
        if isinstance(out.get(name), list):
            out[name] = [_bare(item) for item in out[name]]
    for name in ("tool_choice", "output_config"):
        out[name] = _bare(out.get(name))
    out = {k: v for k, v in out.items() if v is not None}
    metadata = out.pop("metadata", None)
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": opaque_user(user)}
    return out
