"""API errors and the one place they become responses.

Every error body is `{"error": {"code", "message", "field"?}}`. Engine errors carry a status
hint; anything unexpected becomes a plain 500 with the request id and no stack trace (the trace
goes to the log).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "not_ready",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, field: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code or STATUS_CODES.get(status, "error")


def body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        err["field"] = field
    return {"error": err}


def response(status: int, code: str, message: str, field: str | None = None,
             headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body(code, message, field), status=status, headers=headers)
