"""The Anthropic Messages API inbound: `POST /v1/messages` and `/v1/messages/count_tokens`.

Why a dialect of the completion path and not a pipeline of its own: applications built on
Anthropic's SDK (coding agents among them) must get the same quotas, budgets, governance and
audit as OpenAI clients, without a second completion path that could drift from the first. So
a Messages request runs through the gateway's one completion path (`Gateway.completion`) as a
client dialect (`Ctx.dialect`, as the Responses API does):

- the body stays the Messages request (`ctx.body`): governance scans and redacts every string
  of it, the body that may leave the gateway; limits reserve the worst case from `max_tokens`;
  `request.to_chat` checks it on arrival (and estimates its prompt);
- per upstream attempt (`MessagesDialect.adapter`) a model whose provider speaks the Messages
  API (an Anthropic model: its adapter has a `messages` URL) gets the request passed through
  (`Passthrough`, `request.upstream_body`), any other model gets it translated to chat
  completions through its own adapter (providers/translated.py), so a fallback from an
  Anthropic model to an OpenAI-compatible one works within one request;
- answers travel inside in the chat completion form (the Anthropic adapter reads a Message and
  its stream events into it, usage from the Messages usage fields), so usage validation,
  output scanning, the cache, the gateway's own output count and the relay (in-band errors,
  charging a client that leaves) run unchanged; they are rendered back as a Message, or as
  Anthropic's stream events, at the edge (response.py): `MessagesDialect.answer`,
  `MessagesStream`, and `answer` for errors. The usage shown is what the request was charged:
  the upstream's when it was believable, else the gateway's own count (`charged`).

The tenant key comes as `x-api-key` (what Anthropic's SDK sends) or as a bearer token;
`anthropic-version` and `anthropic-beta` headers are accepted and not forwarded (the provider
adapter sends its own version).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from llmplatform.gateway.accounting import own_count
from llmplatform.gateway.bodies import check_request
from llmplatform.gateway.messagesapi.request import to_chat, upstream_body
from llmplatform.gateway.messagesapi.response import StreamTranslator, error, json_answer
from llmplatform.gateway.providers.anthropic import AnthropicAdapter, headers
from llmplatform.gateway.providers.translated import Translated
from llmplatform.gateway.tokens import prompt_tokens
from llmplatform.gateway.worstcase import Shape

if TYPE_CHECKING:
    from llmplatform.gateway.compiled import Model
    from llmplatform.gateway.context import Ctx
    from llmplatform.gateway.providers.base import Adapter, Target

PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"

__all__ = [
    "COUNT_TOKENS_PATH",
    "DIALECT",
    "PATH",
    "answer",
    "api_key",
    "count_tokens",
    "error",
    "on_prepare",
    "to_chat",
]


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
    """Rewrite an error answer (any status but 200: a served Message was rendered by
    `MessagesDialect.answer`) in Anthropic's error shape, in place, headers kept."""
    if not isinstance(response, web.Response) or response.prepared or response.status == 200:
        return
    raw = response.body if isinstance(response.body, bytes) else b""
    response.body = error(response.status, raw)
    response.content_type = "application/json"


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: every answer on the Messages API carries Anthropic's
    `request-id` header."""
    if not speaks(request):
        return
    rid = response.headers.get("x-request-id")
    if rid:
        response.headers["request-id"] = rid


def charged(ctx: Ctx) -> dict[str, Any] | None:
    """The usage a client is shown when the upstream's was not believed (accounting.valid_usage):
    what the request is charged instead; None when it was (the answer's own usage is shown,
    which is what was charged, its cache reads apart)."""
    if ctx.usage_reported:
        return None
    tokens_in, tokens_out = own_count(ctx)
    return {"input_tokens": tokens_in, "output_tokens": tokens_out}


class MessagesStream(web.StreamResponse):
    """The client's stream: what the relay writes (chat chunks, in-band errors, `[DONE]`), a
    cached answer replayed included, goes out as Anthropic's events. The translation wraps
    `write` after `prepare`, outside the audit's hashing wrapper (audit.hash_stream), so the
    audited hash is of the bytes the client got."""

    def __init__(self, ctx: Ctx, headers: dict[str, str]) -> None:
        super().__init__(status=200, headers=headers)
        self._translator = StreamTranslator(charged=lambda: charged(ctx))

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared:
            return await super().prepare(request)
        writer = await super().prepare(request)
        inner = self.write

        async def translated(data: bytes | bytearray | memoryview) -> None:
            out = self._translator.feed(bytes(data))
            if out:
                await inner(out)

        self.write = translated  # type: ignore[method-assign]
        return writer


class Passthrough(AnthropicAdapter):
    """The Anthropic adapter with the client's Messages request sent as it is (`upstream_body`)
    rather than translated from chat; answers, errors and streams are read as for any request
    to an Anthropic model (its usage validated like any upstream's)."""

    def build_request(
        self, body: dict[str, Any], target: Target, stream: bool, request_id: str
    ) -> tuple[bytes, dict[str, str]]:
        upstream = upstream_body(body, target.upstream_model)
        return json.dumps(upstream).encode(), headers(target.api_key, request_id)


PASSTHROUGH = Passthrough()


class MessagesDialect:
    """The hooks the completion path calls for a Messages request (`Ctx.dialect`)."""

    form = "chat"
    include_usage = True  # the stream's usage chunk becomes `message_delta.usage`

    def check(self, body: dict[str, Any]) -> tuple[str, int | None, bool]:
        return check_request(to_chat(body), "chat")

    def user(self, body: dict[str, Any]) -> str | None:
        metadata = body.get("metadata")
        user = metadata.get("user_id") if isinstance(metadata, dict) else None
        return user if isinstance(user, str) else None

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        return prompt_tokens(to_chat(body), "chat")

    def shape(self, body: dict[str, Any]) -> Shape:
        return Shape(max_tokens=body["max_tokens"])  # required, checked

    def adapter(self, model: Model) -> tuple[Adapter, str]:
        """Passed through to a model whose provider speaks the Messages API, translated to
        chat completions for any other (see the module docstring), and the URL."""
        if "messages" in model.urls:
            return PASSTHROUGH, model.urls["messages"]
        return Translated(model.adapter, to_chat), model.urls["chat"]

    def stream(self, ctx: Ctx, headers: dict[str, str]) -> web.StreamResponse:
        return MessagesStream(ctx, headers)

    def answer(self, ctx: Ctx, raw: bytes) -> bytes:
        return json_answer(200, raw, charged(ctx))


DIALECT = MessagesDialect()


def count_tokens(body: dict[str, Any]) -> bytes:
    """The answer of `count_tokens`: the gateway's own estimate of the prompt (the one limits
    reserve against, tokens.py), with no upstream call. It is on the high side by design."""
    chat = to_chat({"max_tokens": 1, **body})
    return json.dumps({"input_tokens": prompt_tokens(chat, "chat")}).encode()
