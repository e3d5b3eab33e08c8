"""The OpenAI Responses API (`POST /v1/responses`) as a client dialect of the completion path.

Why a dialect and not a second pipeline: every platform rule (auth, routing and fallback,
limits and budgets, governance, the cache, audit and metrics) already runs on the completion
path, and must apply to Responses requests exactly as to chat completions. So a Responses
request keeps its own body (`ctx.body`: governance scans and redacts every string of *it*, the
body that may leave the gateway), while answers travel inside the gateway in the chat
completion form the rest of the path understands (`Ctx.form`), and are rendered as Responses
at the edge (`responses_render.py`). Per upstream attempt (`ResponsesDialect.adapter`):

- an OpenAI model that is not self-hosted (api.openai.com, Azure OpenAI and the like) gets the
  request passed through to its Responses API (`providers/openai_responses.py`), only `model`
  replaced and `store` forced to false;
- any other model (Anthropic, a self-hosted OpenAI-compatible server, which may not implement
  Responses) gets the request translated to a chat completion (`to_chat`) and sent through
  its provider's adapter, like any chat request.

Stateless: `previous_response_id`, `conversation` and `store: true` are refused with a 400
(docs/gateway.md, "Responses API", says why). What else is refused, and why, is in `check`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from llmplatform.gateway.bodies import MAX_USER
from llmplatform.gateway.errors import GatewayError
from llmplatform.gateway.providers.openai_responses import PASSTHROUGH
from llmplatform.gateway.providers.translated import Translated
from llmplatform.gateway.responses_render import ResponsesStream, render_json
from llmplatform.gateway.tokens import MESSAGE_OVERHEAD, REPLY_PRIMING, text_tokens
from llmplatform.gateway.worstcase import Shape

if TYPE_CHECKING:
    from aiohttp import web

    from llmplatform.gateway.compiled import Model
    from llmplatform.gateway.context import Ctx
    from llmplatform.gateway.providers.base import Adapter

REFUSED = {
    "previous_response_id": (
        "the gateway is stateless: send the whole conversation as input items (a stored "
        "response could be served by another provider on fallback, and stored prompts would "
        "sit outside the gateway's redaction and audit)"
    ),
    "conversation": "the gateway is stateless: send the whole conversation as input items",
    "prompt": (
        "reusable prompt templates are stored at one provider, which routing and PII scanning cannot see"
    ),
}
"""Parameters refused whenever they are set (not null)."""
ROLES = frozenset({"user", "assistant", "system", "developer"})
ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "reasoning"})
"""Input item types accepted; the others refer to stored state (`item_reference`) or to
built-in tools the gateway refuses."""
IMAGE_TOKENS = 765
"""Flat estimate for one image (as tokens.py counts chat image parts)."""


def _bad(param: str, message: str) -> GatewayError:
    return GatewayError(400, message, code="invalid_request", param=param)


def _int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise _bad(name, f"'{name}' must be a positive integer")
    return value


def _number(body: dict[str, Any], name: str) -> None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise _bad(name, f"'{name}' must be a number")


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise _bad("tools", "'tools' must be an array")
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, dict):
            raise _bad(f"tools[{i}]", f"tools[{i}] must be an object")
        if tool.get("type") != "function":
            raise _bad(
                f"tools[{i}].type",
                f"tools[{i}]: only function tools are supported by this gateway (built-in tools "
                "run and are billed at one provider, per call, which routing and budgets cannot follow)",
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise _bad(f"tools[{i}].name", f"tools[{i}].name must be a non-empty string")
        if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
            raise _bad(f"tools[{i}].parameters", f"tools[{i}].parameters must be a JSON schema object")
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none", "required"):
        return
    if not (
        isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str)
    ):
        raise _bad(
            "tool_choice",
            "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}",
        )


def _check_text(body: dict[str, Any]) -> None:
    text = body.get("text")
    if text is None:
        return
    if not isinstance(text, dict):
        raise _bad("text", "'text' must be an object")
    fmt = text.get("format")
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise _bad("text.format", "text.format.type must be 'text', 'json_object' or 'json_schema'")
    if kind == "json_schema" and (
        not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict)
    ):
        raise _bad("text.format", "a json_schema text.format needs a 'name' and a 'schema' object")


def _check_item(item: Any, i: int) -> None:
    where = f"input[{i}]"
    if not isinstance(item, dict):
        raise _bad(where, f"{where} must be an object")
    kind = item.get("type", "message")
    if kind not in ITEM_TYPES:
        raise _bad(
            f"{where}.type",
            f"{where}: input items of type {kind!r} are not supported by this gateway (it is "
            "stateless and serves function tools only)",
        )
    if kind == "message":
        if item.get("role") not in ROLES:
            raise _bad(f"{where}.role", f"{where}.role must be one of {', '.join(sorted(ROLES))}")
        content = item.get("content")
        if not isinstance(content, str | list):
            raise _bad(f"{where}.content", f"{where}.content must be a string or an array of parts")
        for j, part in enumerate(content if isinstance(content, list) else []):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise _bad(f"{where}.content[{j}]", f"{where}.content[{j}] must be an object with a type")
    elif kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise _bad(f"{where}.{name}", f"{where}.{name} must be a string")
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise _bad(f"{where}.call_id", f"{where}.call_id must be a string")
        if not isinstance(item.get("output"), str | list):
            raise _bad(f"{where}.output", f"{where}.output must be a string or an array of parts")


def check(body: dict[str, Any]) -> tuple[str, int | None, bool]:
    """The requested model, `max_output_tokens` and stream flag of a Responses request, or a
    400 naming the parameter that is malformed or that the gateway refuses."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "you must provide a model parameter")
    for name, reason in REFUSED.items():
        if body.get(name) is not None:
            raise _bad(name, f"'{name}' is not supported by this gateway: {reason}")
    if body.get("store") not in (None, False):
        raise _bad(
            "store",
            "'store' must be false (or left out): the gateway is stateless and never asks a "
            "provider to keep responses",
        )
    if body.get("background") not in (None, False):
        raise _bad("background", "'background' is not supported: a request's budget settles when it ends")
    inp = body.get("input")
    if isinstance(inp, list):
        if not inp:
            raise _bad("input", "'input' must contain at least one item")
        for i, item in enumerate(inp):
            _check_item(item, i)
    elif not isinstance(inp, str):
        raise _bad("input", "'input' is a required property (a string or an array of input items)")
    if body.get("instructions") is not None and not isinstance(body["instructions"], str):
        raise _bad("instructions", "'instructions' must be a string")
    max_tokens = _int(body, "max_output_tokens")
    for name in ("temperature", "top_p"):
        _number(body, name)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "stream must be a boolean")
    metadata = body.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise _bad("metadata", "'metadata' must be an object of string values")
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > MAX_USER):
        raise _bad("user", f"'user' must be a string of at most {MAX_USER} characters")
    _check_tools(body)
    _check_text(body)
    return model, max_tokens, stream


def shape(body: dict[str, Any]) -> Shape:
    """The worst case (worstcase.py): one output of at most `max_output_tokens` (reasoning
    tokens included, as OpenAI bills them), else the model's maxOutputTokens."""
    return Shape(max_tokens=body.get("max_output_tokens"))


def _part_tokens(part: Any) -> int:
    if not isinstance(part, dict):
        return text_tokens(str(part))
    if part.get("type") == "input_image":
        return IMAGE_TOKENS
    if isinstance(part.get("text"), str):
        return text_tokens(part["text"])
    return text_tokens(json.dumps(part))  # files and parts to come: their encoded size


def prompt_tokens(body: dict[str, Any]) -> int:
    """Estimated input tokens (tokens.py's heuristic): instructions, every input item, and the
    tool and text-format definitions, which are sent with the prompt and billed as input."""
    total = REPLY_PRIMING
    if isinstance(body.get("instructions"), str):
        total += MESSAGE_OVERHEAD + text_tokens(body["instructions"])
    inp = body.get("input")
    for item in [inp] if isinstance(inp, str) else inp if isinstance(inp, list) else []:
        total += MESSAGE_OVERHEAD
        content = item.get("content", item.get("output")) if isinstance(item, dict) else item
        if isinstance(content, str):
            total += text_tokens(content)
        elif isinstance(content, list):
            total += sum(_part_tokens(p) for p in content)
        if isinstance(item, dict) and item.get("type") == "function_call":
            total += text_tokens(str(item.get("name", ""))) + text_tokens(str(item.get("arguments", "")))
    for name in ("tools", "text"):
        if body.get(name) is not None:
            total += text_tokens(json.dumps(body[name]))
    return total


# -- translation to a chat completion (models without a Responses API) ------------------------


def _text_parts(content: Any, where: str) -> str:
    """The text of assistant, tool-output or system content given as parts."""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        text = part.get("text", part.get("refusal")) if isinstance(part, dict) else None
        if not isinstance(text, str):
            raise _bad(f"{where}[{j}]", f"{where}[{j}]: only text parts can be sent to this model")
        texts.append(text)
    return "".join(texts)


def _user_parts(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: dict[str, Any] = {"url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise _bad(
                f"{where}[{j}]",
                f"{where}[{j}]: content part {kind!r} cannot be sent to this model (text and "
                "images given by URL or data URL can)",
            )
    return parts


def _item_message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item["role"]
    content = item["content"]
    if role == "assistant":
        return {"role": "assistant", "content": _text_parts(content, f"{where}.content")}
    if role in ("system", "developer"):  # developer is not understood by every chat server
        return {"role": "system", "content": _text_parts(content, f"{where}.content")}
    return {"role": "user", "content": _user_parts(content, f"{where}.content")}


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A checked (`check`) Responses request as a chat completion request. `metadata` is not
    sent (it was scanned like everything else, and is echoed in the answer); `reasoning`
    items and parameters are dropped (a chat model has no use for another model's reasoning)."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        messages.append({"role": "system", "content": body["instructions"]})
    inp = body["input"]
    items = [{"type": "message", "role": "user", "content": inp}] if isinstance(inp, str) else inp
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_item_message(item, where))
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = _text_parts(item["output"], f"{where}.output")
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
    out: dict[str, Any] = {"model": body["model"], "messages": messages}
    for name in ("temperature", "top_p", "user", "parallel_tool_calls", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    k: tool[k]
                    for k in ("name", "description", "parameters", "strict")
                    if tool.get(k) is not None
                },
            }
            for tool in body["tools"]
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        out["tool_choice"] = choice
    fmt = (body.get("text") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["response_format"] = {"type": "json_object"}
    return out


class ResponsesDialect:
    """The hooks the completion path calls for a Responses request (`Ctx.dialect`)."""

    form = "chat"
    include_usage = False  # the rendered answer's usage is what the request was charged

    def check(self, body: dict[str, Any]) -> tuple[str, int | None, bool]:
        return check(body)

    def user(self, body: dict[str, Any]) -> str | None:
        user = body.get("user")
        return user if isinstance(user, str) else None

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        return prompt_tokens(body)

    def shape(self, body: dict[str, Any]) -> Shape:
        return shape(body)

    def adapter(self, model: Model) -> tuple[Adapter, str]:
        """How one attempt speaks to `model`: passed through to its Responses API, or
        translated to chat completions (see the module docstring), and the URL."""
        if not model.self_hosted and "responses" in model.urls:  # the OpenAI adapter's
            return PASSTHROUGH, model.urls["responses"]
        return Translated(model.adapter, to_chat), model.urls["chat"]

    def stream(self, ctx: Ctx, headers: dict[str, str]) -> web.StreamResponse:
        return ResponsesStream(ctx, headers)

    def answer(self, ctx: Ctx, raw: bytes) -> bytes:
        return render_json(ctx, raw)


DIALECT = ResponsesDialect()
