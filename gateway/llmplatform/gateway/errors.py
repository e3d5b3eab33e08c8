"""OpenAI-style error bodies.

Why one exception type: every rejection path (auth, routing, limits, upstream failure) ends
in the same `{"error": {"message", "type", "param", "code"}}` body that OpenAI clients parse
into their own exception classes, so handlers raise and one place renders.
"""

from __future__ import annotations

import json
from typing import Any

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout",
}

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def http_error_code(status: int) -> str:
    """The `code` of an error aiohttp raised itself (unknown path, wrong method, ...): never
    null, so clients can branch on it like on the gateway's own errors."""
    return _HTTP_CODES.get(status, "server_error" if status >= 500 else "invalid_request")


class GatewayError(Exception):
    """A request the gateway answers with an error status and an OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, code=self.code, param=self.param)


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": param,
            "code": code,
        }
    }


def error_bytes(status: int, message: str, *, code: str | None = None) -> bytes:
    return json.dumps(error_body(status, message, code=code)).encode()
