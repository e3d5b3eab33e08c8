"""The one object a request carries through the gateway.

Why one object: the completion path runs through auth, admission, governance, the cache, the
fallback loop and the stream relay; each needs some of what the others found (the body, the
policy, the response headers so far, the redacted copies, the model that answered). Passing
them as one slotted dataclass keeps signatures short and costs one allocation per request; it
is also what metrics, the audit record and the logs read at the end.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from llmplatform.gateway.keyfilter import redact

if TYPE_CHECKING:
    from aiohttp import web

    from llmplatform.gateway.compiled import Model, Policy
    from llmplatform.gateway.providers.base import Adapter
    from llmplatform.gateway.worstcase import Shape

NO_BODY: dict[str, Any] = {}
"""Placeholder until the body is parsed (never mutated)."""

_RID_PREFIX = os.urandom(6).hex()
_rid_counter = itertools.count(1)


def new_request_id() -> str:
    """A request id unique across processes (random per-process prefix) without a syscall or a
    UUID object per request."""
    return f"{_RID_PREFIX}{next(_rid_counter):010x}"


CLIENT_ID_MAX = 128
"""Longest client-supplied request id kept (longer ones are truncated)."""


def client_request_id(header: str | None) -> str | None:
    """The client's `x-request-id`, made safe to record and echo: at most CLIENT_ID_MAX
    characters, anything but printable ASCII replaced by `_`; None when absent or empty.

    Why separate from `request_id`: the gateway's own id must be unique (the audit trail and the
    logs are keyed on it), and a client can send the same id any number of times; its id is
    still worth keeping, to correlate with the client's own logs."""
    if not header:
        return None
    value = header[:CLIENT_ID_MAX]
    if not (value.isascii() and value.isprintable()):
        value = "".join(c if " " <= c <= "~" else "_" for c in value)
    return redact(value.strip()) or None


class Dialect(Protocol):
    """A client API served on the completion path with answers carried inside in the OpenAI
    form of `form` (the Responses API: responses.py; Anthropic's Messages API: messagesapi/)."""

    form: str
    include_usage: bool
    """Whether the client's stream needs the usage-only chunk of the `form` stream (its
    renderer turns it into the API's own usage event); else the relay drops it."""

    def check(self, body: dict[str, Any]) -> tuple[str, int | None, bool]:
        """The requested model, output cap and stream flag, or a 400 (bodies.check_request)."""
        ...

    def user(self, body: dict[str, Any]) -> str | None:
        """The end-user id the client sent (honoured only for trustClientUser keys)."""
        ...

    def prompt_tokens(self, body: dict[str, Any]) -> int:
        """Estimated input tokens (tokens.py)."""
        ...

    def shape(self, body: dict[str, Any]) -> Shape:
        """What the request asks for (worstcase.py)."""
        ...

    def adapter(self, model: Model) -> tuple[Adapter, str]:
        """The adapter and URL of one attempt at `model`."""
        ...

    def stream(self, ctx: Ctx, headers: dict[str, str]) -> web.StreamResponse:
        """The client's stream, which renders the `form` events written to it."""
        ...

    def answer(self, ctx: Ctx, raw: bytes) -> bytes:
        """A complete `form` JSON answer rendered for the client."""
        ...


class Trace(Protocol):
    """What the request path calls on a request's trace (tracing.RequestTrace, or
    tracing.Unsampled); declared here so that the path depends on the hooks, not on the
    OpenTelemetry module. `recording` is
    False for a request the sampler dropped (tracing.Unsampled): its hooks do nothing, so a
    caller checks it before building an event's attributes."""

    @property
    def recording(self) -> bool: ...

    def event(self, name: str, attributes: dict[str, Any]) -> None: ...
    def attempt_start(self, ctx: Ctx, model: Model) -> None: ...
    def inject(self, headers: dict[str, str]) -> None: ...
    def attempt_end(self, ctx: Ctx, result: object) -> None: ...


@dataclass(slots=True)
class Ctx:
    """What one request asked and did (slots: one per request, and read and written some
    hundred times in it)."""

    request_id: str
    """The gateway's own id, unique per request (see `new_request_id`)."""
    endpoint: str
    """The client's API, by its path: `chat`, `completions`, `embeddings`, `responses`,
    `messages` (the audit record's `api`); `form` is the OpenAI form it runs as inside."""
    start: float
    http: web.Request
    body: dict[str, Any] = field(default_factory=lambda: NO_BODY)
    """The parsed request body (NO_BODY before it is read)."""
    stream: bool = False
    policy: Policy | None = None
    """The tenant's routing policy, once authenticated."""
    extra: dict[str, str] | None = None
    """Response headers decided before the upstream call (classification, x-ratelimit-*)."""
    copies: dict[str, dict[str, Any]] | None = None
    """Redacted request bodies by model id, for the candidates that get the copy."""
    prompt: int = 0
    """Estimated prompt tokens."""
    shape: Shape | None = None
    """What the request asks for (worstcase.py): output cap, choices billed."""
    worst_out: int = 0
    """Output tokens reserved (the worst case over the candidates): the ceiling against
    which upstream-reported usage is checked."""
    tenant: str = "none"
    user: str | None = None
    key: str | None = None
    model: str = "none"
    tier: str = "none"
    fallback_level: int = 0
    status: int = 200
    error_code: str | None = None
    use_case: str | None = None
    client_request_id: str | None = None
    """The client's `x-request-id`, checked (see `client_request_id`)."""
    tokens_in: int = 0
    tokens_out: int = 0
    usage_reported: bool = False
    """Believable usage came from the upstream (accounting.valid_usage)."""
    usage_rejected: bool = False
    """The upstream reported usage that was not believable (the gateway's count is charged)."""
    relayed_out: int = 0
    """The gateway's own count of the output tokens sent to the client (accounting.output_tokens)."""
    cost: float = 0.0
    first_chunk: float | None = None
    first_chunk_at: float | None = None
    chunks: int = 0
    served: Model | None = None
    committed: web.StreamResponse | None = None
    """The streamed response once its status line has gone: from then on every failure is
    reported in-band (relay.end_in_band), never as a second response."""
    committed_open: bool = False
    """`committed` has not been ended yet."""
    request_sha256: str | None = None
    """SHA-256 of the raw request body (None when it was not read: 401, 413)."""
    response_sha256: str | None = None
    classification: str | None = None
    """The request's class; None when it was refused before its content was scanned."""
    findings: dict[str, int] = field(default_factory=dict)
    """PII finding type -> count in the request."""
    redacted: bool = False
    """The request that left the gateway was the redacted copy."""
    cache: str | None = None
    """`hit` or `miss` when the response cache applies to the request."""
    cache_key: str | None = None
    cache_ttl: int = 0
    """Seconds a stored answer is served: the tenant's (its policy's TTL capped by its retention)."""
    retention_days: int | None = None
    """How long the tenant's audit record is kept; None before authentication (then the
    gateway's default for records of no tenant applies)."""
    scan_output: bool = False
    hipaa: bool = False
    dialect: Dialect | None = None
    """The client's API when it is not the endpoint's own OpenAI form (Responses, Messages)."""

    @property
    def form(self) -> str:
        """The endpoint whose OpenAI form requests and answers take inside the gateway."""
        return self.dialect.form if self.dialect is not None else self.endpoint

    trace: Trace | None = None
    """The request's spans when tracing is on (tracing.py), else None."""

    def include_usage(self) -> bool:
        """Whether the client's stream gets the usage chunk: asked for in `stream_options`,
        or needed by the dialect's renderer."""
        if self.dialect is not None:
            return self.dialect.include_usage
        return bool((self.body.get("stream_options") or {}).get("include_usage"))
