"""Client connections: time limits on reading a request head, and the malformed-request path.

Why here: aiohttp's server keeps a connection that has not finished sending its request head
for as long as its keep-alive timeout (an hour by default), so a client that sends headers a
byte at a time (slowloris) holds a connection and its buffers indefinitely; and when a request
head cannot be parsed, aiohttp logs the offending line verbatim and echoes it in a text/plain
400 body: a key in that line (a NUL byte after a valid key is enough) ends up in the logs and
back on the wire. This module gives the gateway's server both behaviours it needs instead:

- `head_seconds`: a connection must deliver a complete request head within this many seconds
  of being opened, or of the first byte of a following request on a kept-alive connection;
  else it is closed. (The body has its own limit, `body_seconds`, applied where the gateway
  reads it: server.Gateway._read_body.) "Between requests" is counted, not read from
  aiohttp's `_request_in_progress`: that flag is set only once the request's handler task
  has started, a loop turn after aiohttp took the parsed head (tasks are not started eagerly
  on Python 3.11), and body bytes read in that turn used to arm the deadline, which then
  closed the connection `head_seconds` later in the middle of the request's stream.
- a malformed request gets an OpenAI-style 400 that names no part of the request, is logged
  as one line without the request's bytes, and the connection is closed.

How: `GuardedRunner` is an `AppRunner` whose server creates `GuardedHandler`s, a subclass of
aiohttp's per-connection protocol. It relies on aiohttp's `RequestHandler` hooks
(`connection_made`, `data_received`, `_handle_request`, `handle_error`), on its count of
parsed requests (`_request_count`) and on `Server` keeping its handler arguments in
`_kwargs`; tests/security/test_protocol_connections.py fails if that changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from llmplatform.gateway import metrics as m
from llmplatform.gateway.errors import error_body

log = logging.getLogger("llmplatform.gateway")

DEFAULT_HEAD_SECONDS = 10.0
DEFAULT_BODY_SECONDS = 60.0


class GuardedHandler(RequestHandler):
    """aiohttp's connection protocol with a request-head deadline and a quiet 400."""

    __slots__ = ("_answered", "_head_deadline", "_head_seconds")

    def __init__(self, manager: Server, *, head_seconds: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_seconds = head_seconds
        self._head_deadline: asyncio.TimerHandle | None = None
        self._answered = 0
        """Requests whose handling has ended; equal to `_request_count` (heads parsed) exactly
        when the connection is between requests."""

    def _arm(self) -> None:
        if self._head_deadline is None and self._head_seconds > 0:
            self._head_deadline = self._loop.call_later(self._head_seconds, self._head_expired)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_expired(self) -> None:
        self._head_deadline = None
        m.CONNECTIONS_CLOSED.labels("head_timeout").inc()
        log.info("closing a connection: no complete request head within %ss", self._head_seconds)
        self.force_close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data and self._answered == self._request_count and not self._upgraded:
            # between requests: the first byte of a request head on a kept-alive connection
            # (bytes of a request parsed and not yet answered, queued or handled, never arm it:
            # its body has its own limit)
            self._arm()
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._disarm()  # a whole head arrived (or a parse error, answered below)

    async def _handle_request(
        self,
        request: BaseRequest,
        start_time: float | None,
        request_handler: Callable[[BaseRequest], Awaitable[web.StreamResponse]],
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            self._answered += 1

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        # Never the parser's message: it quotes the bad line, which may hold a key.
        m.CONNECTIONS_CLOSED.labels("malformed_request").inc()
        log.warning(
            "malformed HTTP request refused",
            extra={"error": type(exc).__name__, "status": exc.code or status},
        )
        code = exc.code if 400 <= (exc.code or 0) < 500 else 400
        body = error_body(code, "malformed HTTP request", code="malformed_request")
        resp = web.Response(status=code, body=json.dumps(body).encode(), content_type="application/json")
        resp.force_close()
        return resp


class GuardedServer(Server):
    def __init__(self, base: Server, head_seconds: float) -> None:
        super().__init__(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self.head_seconds = head_seconds

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, head_seconds=self.head_seconds, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections are `GuardedHandler`s."""

    def __init__(self, app: web.Application, *, head_seconds: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.head_seconds = head_seconds

    async def _make_server(self) -> Server:
        return GuardedServer(await super()._make_server(), self.head_seconds)
