"""What every provider adapter does, and what an upstream attempt can come back as.

Why an interface: applications speak OpenAI to the gateway whichever model serves them, so each
provider is a translation at the edge: the request going up, the answer (and its usage) coming
back in OpenAI form, the stream translated event by event, and its errors mapped to the failure
kinds the fallback loop and the circuit breaker understand. The rest of the gateway only ever
calls these methods on `Model.adapter`; no other module branches on a provider's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True)
class Failure:
    """An upstream attempt that produced no answer for the client (yet)."""

    kind: str
    """`status`, `timeout` or `connect` (refused, reset or dropped); `credentials` for a
    model that was not called because its upstream credential cannot be read."""
    status: int = 0
    body: bytes = b""
    detail: str = ""
    retry_after: str | None = None
    """The upstream's `Retry-After` (checked), forwarded when the failure is passed through."""


class StreamFailed(Exception):
    """An error event before the stream produced anything: fall back like a status error."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class Target(Protocol):
    """What an adapter needs of the model it sends to (`compiled.Model` has these)."""

    @property
    def upstream_model(self) -> str: ...
    @property
    def max_output_tokens(self) -> int | None: ...
    @property
    def api_key(self) -> str | None: ...


class StreamTranslator(Protocol):
    failed_status: int | None
    """Set (to the gateway status) when an error event broke the stream after it started."""

    def feed(self, event: bytes) -> list[bytes]:
        """One upstream event in, zero or more OpenAI events out (raises ValueError when the
        event cannot be read, StreamFailed for an error before the first event)."""
        ...


class Adapter(Protocol):
    default_output_tokens: int | None
    """Output tokens the adapter asks for when neither request nor model sets a maximum
    (reserved as the worst case); None: the rest of the context window."""

    def endpoints(self, base: str, capabilities: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
        """Upstream URL per endpoint (chat, completions, embeddings) under `base` (ending in
        /v1), and the capabilities the provider's API can serve."""
        ...

    def build_request(
        self, body: dict[str, Any], target: Target, stream: bool, request_id: str
    ) -> tuple[bytes, dict[str, str]]:
        """The upstream request body and headers for an OpenAI request body."""
        ...

    def parse_response(self, status: int, raw: bytes) -> bytes | Failure:
        """A complete (non-stream) answer as an OpenAI JSON body (with `usage`), or the
        Failure it stands for."""
        ...

    def stream_error(self, status: int, raw: bytes) -> Failure:
        """The Failure for a stream request answered with a non-200 status."""
        ...

    def stream_translator(self) -> StreamTranslator | None:
        """A translator for one stream, or None when the upstream already speaks OpenAI SSE."""
        ...
