"""A model's own adapter, fed a client dialect's request translated to a chat completion.

Why one wrapper for every dialect: a client API the gateway serves on top of chat completions
(the Responses API, Anthropic's Messages API) is passed through to the models whose provider
speaks it and translated for the others. The translated attempt is the model's ordinary chat
attempt; only the request body differs, so this wrapper changes `build_request` and hands
everything else (answers, errors, streams) to the model's adapter unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmplatform.gateway.providers.base import Adapter, Failure, StreamTranslator, Target


class Translated:
    """`inner` (the model's adapter), with the request translated by `to_chat` first."""

    def __init__(self, inner: Adapter, to_chat: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.inner = inner
        self.to_chat = to_chat
        self.default_output_tokens = inner.default_output_tokens

    def endpoints(self, base: str, capabilities: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
        return self.inner.endpoints(base, capabilities)

    def build_request(
        self, body: dict[str, Any], target: Target, stream: bool, request_id: str
    ) -> tuple[bytes, dict[str, str]]:
        return self.inner.build_request(self.to_chat(body), target, stream, request_id)

    def parse_response(self, status: int, raw: bytes) -> bytes | Failure:
        return self.inner.parse_response(status, raw)

    def stream_error(self, status: int, raw: bytes) -> Failure:
        return self.inner.stream_error(status, raw)

    def stream_translator(self) -> StreamTranslator | None:
        return self.inner.stream_translator()
