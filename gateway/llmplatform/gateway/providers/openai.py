"""OpenAI-compatible upstreams (OpenAI, vLLM, TGI, llama.cpp and the like): nearly a pass-through.

The request goes up as the client sent it with the model's upstream name, and streams ask for
usage (`stream_options.include_usage`) so budgets settle to what was used; the gateway drops the
usage-only chunk again when the client did not ask for it. Answers and errors are already in
OpenAI form.
"""

from __future__ import annotations

import json
from typing import Any

from llmplatform.gateway.providers.base import Failure, Target

PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",  # only for the Responses API passthrough (responses.py)
}


class OpenAIAdapter:
    default_output_tokens: int | None = None

    def endpoints(self, base: str, capabilities: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
        return {kind: base + path for kind, path in PATHS.items()}, capabilities

    def build_request(
        self, body: dict[str, Any], target: Target, stream: bool, request_id: str
    ) -> tuple[bytes, dict[str, str]]:
        payload = dict(body)
        payload["model"] = target.upstream_model
        if stream:
            payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        headers = {"content-type": "application/json", "x-request-id": request_id}
        if target.api_key:
            headers["authorization"] = f"Bearer {target.api_key}"
        return json.dumps(payload).encode(), headers

    def parse_response(self, status: int, raw: bytes) -> bytes | Failure:
        return raw if status == 200 else Failure("status", status, raw)

    def stream_error(self, status: int, raw: bytes) -> Failure:
        return Failure("status", status, raw)

    def stream_translator(self) -> None:
        return None
