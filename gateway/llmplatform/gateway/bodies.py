"""Request bodies: from raw bytes to a checked JSON object, or a clear 4xx.

Why its own module: every byte a client sends passes here before anything else looks at it,
so bad input (binary, invalid UTF-8, a non-JSON content type, JSON nested deeply enough to
exhaust recursion later, fields of the wrong type) is refused in one place with an OpenAI
error body, and the rest of the gateway can trust the shape of what it gets.

Nesting: `json.loads` itself refuses nesting beyond the interpreter's recursion limit with a
RecursionError, safely; but anything that later walks the parsed value recursively (`repr`,
`json.dumps` for the upstream call, the PII scanner) could still hit that limit deep inside a
request. So depth is bounded at `MAX_DEPTH`. Counting brackets in the raw bytes (a C-speed
`bytes.count`) proves most bodies shallow without walking anything; only bodies with more than
`MAX_DEPTH` brackets are walked, iteratively, after parsing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from llmplatform.gateway.errors import GatewayError

MAX_DEPTH = 64
"""Deep enough for any real request (tool parameter schemas are rarely 10 levels deep)."""
MAX_USER = 256
JSON_TYPES = ("application/json", "text/plain")
"""Content types a JSON body may arrive with; `+json` types are accepted too. text/plain is
what some clients and proxies send for JSON; a missing type is accepted as JSON."""


def check_content_type(content_type: str) -> None:
    """415 for a body that says it is something other than JSON (a form, multipart, binary)."""
    mime = content_type.partition(";")[0].strip().lower()
    if mime and mime not in JSON_TYPES and not mime.endswith("+json"):
        raise GatewayError(
            415,
            f"unsupported Content-Type {mime!r}: send the request as JSON with "
            "'Content-Type: application/json'",
            code="unsupported_media_type",
        )


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests lists/objects more than `limit` deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when it overflows to infinity
    (`1e999`): Python would forward it upstream as `Infinity`, which is not JSON."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range (not a finite double)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
"""Built once: `json.loads(text, parse_constant=...)` would construct a new decoder (and its
scanner) for every request body. NaN, Infinity and -Infinity tokens and numbers that overflow
a double are refused wherever they are in the body (`parse_constant`, `parse_float`); integers
are exact in Python, and the interpreter's digit limit bounds them."""


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw`, or a 400 saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GatewayError(
            400,
            f"the request body is not valid UTF-8 (invalid byte at offset {exc.start})",
            code="invalid_json",
        ) from exc
    try:
        if text.startswith("\ufeff"):  # what json.loads says about a BOM, kept word for word
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        body = _DECODER.decode(text)  # NaN, Infinity: not JSON
    except RecursionError as exc:
        raise GatewayError(
            400, f"the JSON body nests deeper than {MAX_DEPTH} levels", code="invalid_json"
        ) from exc
    except ValueError as exc:
        raise GatewayError(
            400, f"We could not parse the JSON body of your request ({exc})", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise GatewayError(
            400,
            f"the request body must be a JSON object, not {type(body).__name__}",
            code="invalid_json",
        )
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and depth_exceeds(body, MAX_DEPTH):
        raise GatewayError(400, f"the JSON body nests deeper than {MAX_DEPTH} levels", code="invalid_json")
    return body


def _bad(param: str, message: str) -> GatewayError:
    return GatewayError(400, message, code="invalid_request", param=param)


def check_shape(body: dict[str, Any], endpoint: str) -> None:
    """Types of the fields the gateway itself reads (the upstream checks the rest)."""
    if endpoint == "chat":
        messages = body.get("messages")
        if isinstance(messages, list):
            if not messages:
                raise _bad("messages", "'messages' must contain at least one message")
            for i, message in enumerate(messages):
                if not isinstance(message, dict):
                    raise _bad(f"messages[{i}]", f"messages[{i}] must be an object")
                if not isinstance(message.get("role"), str):
                    raise _bad(f"messages[{i}].role", f"messages[{i}].role must be a string")
                content = message.get("content")
                if content is not None and not isinstance(content, str | list):
                    raise _bad(
                        f"messages[{i}].content",
                        f"messages[{i}].content must be a string, an array of parts or null",
                    )
    elif endpoint == "completions":
        if not isinstance(body.get("prompt"), str | list):
            raise _bad("prompt", "'prompt' must be a string or an array")
    elif not isinstance(body.get("input"), str | list):
        raise _bad("input", "'input' must be a string or an array")
    user = body.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > MAX_USER):
        raise _bad("user", f"'user' must be a string of at most {MAX_USER} characters")


REQUIRED = {"chat": "messages", "completions": "prompt", "embeddings": "input"}
"""The field each endpoint's body must have."""


def check_request(body: dict[str, Any], endpoint: str) -> tuple[str, int | None, bool]:
    """The requested model, max_tokens and stream flag, checked (then `check_shape`)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "you must provide a model parameter")
    required = REQUIRED[endpoint]
    value = body.get(required)
    if value is None or (endpoint == "chat" and not isinstance(value, list)):
        raise _bad(required, f"'{required}' is a required property")
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise _bad(name, f"{name} must be a positive integer")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "stream must be a boolean")
    if body.get("stream_options") is not None and not isinstance(body["stream_options"], dict):
        raise _bad("stream_options", "stream_options must be an object")
    if endpoint == "embeddings" and stream:
        raise _bad("stream", "embeddings cannot be streamed")
    check_shape(body, endpoint)
    return model, max_tokens, stream
