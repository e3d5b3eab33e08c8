"""The Anthropic Messages API inbound: `POST /v1/messages` and `/v1/messages/count_tokens`.

Why a package of its own: applications built on Anthropic's SDK (coding agents among them)
must get the same quotas, budgets, governance and audit as OpenAI clients, without a second
completion path that could drift from the first. So a Messages request runs through the
gateway's one completion path (`Gateway.completion`, endpoint kind `chat`):

- `request.to_chat` turns the body into the chat completions body that the path (routing,
  the PII scan and redaction, worst case from `max_tokens`, limits, cache, fallback, usage
  validation, audit) works on; the providers translate it up as for any chat request.
- `answer` turns the JSON answer or error of that path into the Messages API's, and
  `on_prepare` translates a streamed answer event by event as it is written
  (response.StreamTranslator), so in-band errors and cached answers replayed as streams are
  translated too, and the audit hash is of the bytes the client received.

The tenant key comes as `x-api-key` (what Anthropic's SDK sends) or as a bearer token;
`anthropic-version` and `anthropic-beta` headers are accepted and not forwarded (the provider
adapter sends its own version).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from llmplatform.gateway.messagesapi.request import to_chat
from llmplatform.gateway.messagesapi.response import StreamTranslator, error, json_answer
from llmplatform.gateway.tokens import prompt_tokens

PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

__all__ = ["COUNT_TOKENS_PATH", "PATH", "answer", "api_key", "count_tokens", "error", "on_prepare", "to_chat"]


def speaks(request: web.Request) -> bool:
    """Whether the request came in through the Messages API (its answers are translated)."""
    return request.path.startswith(PATH)


def api_key(request: web.Request) -> str | None:
    """The tenant key as an `Authorization` header value: Anthropic's `x-api-key` first, else
    whatever `Authorization` holds (None: the gateway's own check applies)."""
    key = request.headers.get("x-api-key")
    if key is not None and speaks(request):
        return f"Bearer {key}"
    return None


def answer(response: web.StreamResponse) -> None:
    """Rewrite a JSON answer (a Message, or an Anthropic error) in place, headers kept."""
    if not isinstance(response, web.Response) or response.prepared:
        return
    raw = response.body if isinstance(response.body, bytes) else b""
    response.body = json_answer(response.status, raw)
    response.content_type = "application/json"


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook (after the audit's stream hash, so it wraps it): every answer
    on the Messages API carries Anthropic's `request-id` header; a stream is translated as it
    is written."""
    if not speaks(request):
        return
    rid = response.headers.get("x-request-id")
    if rid:
        response.headers["request-id"] = rid
    if isinstance(response, web.Response):
        return
    translator = StreamTranslator()
    write, write_eof = response.write, response.write_eof

    async def translated_write(data: Any) -> None:
        out = translator.feed(bytes(data))
        if out:
            await write(out)

    async def translated_write_eof(data: bytes = b"") -> None:
        await write_eof(translator.feed(data) if data else b"")

    response.write = translated_write  # type: ignore[method-assign]
    response.write_eof = translated_write_eof  # type: ignore[method-assign]


def count_tokens(body: dict[str, Any]) -> bytes:
    """The answer of `count_tokens`: the gateway's own estimate of the prompt (the one limits
    reserve against, tokens.py), with no upstream call. It is on the high side by design."""
    chat = to_chat({"max_tokens": 1, **body})
    return json.dumps({"input_tokens": prompt_tokens(chat, "chat")}).encode()
