"""Middlewares: request id and bound log context, metrics by route, and the single place where
errors turn into JSON responses (no stack trace ever reaches a client)."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import structlog
from aiohttp import web

from gateway import log
from gateway.engine.errors import EngineError
from gateway.web import errors, validate
from gateway.web.keys import METRICS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID_HEADER = "X-Request-Id"
SERVER_HEADER = "dni-gateway"  # no version or framework: nothing to fingerprint
# Metric labels take the method only from this set, so made-up methods cannot grow the series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A client may pass its own id for tracing; accept it only when it is short and plain.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_log = log.get("gateway.web")
# Request ids correlate log lines; they need to be unique, not secret: a per-process random
# prefix and a counter cost far less than a fresh random token per request.
_ID_PREFIX = secrets.token_hex(4)
_ids = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):08x}"


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


def _http_error(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc
    if exc.status == 413:
        message = "request body too large"
    elif exc.status == 405:
        message = f"method {exc.reason!s} not allowed"
    else:
        message = exc.reason or "error"
    code = errors.STATUS_CODES.get(exc.status, "error")
    resp = errors.response(exc.status, code, message)
    if exc.status == 405 and "Allow" in exc.headers:
        resp.headers["Allow"] = exc.headers["Allow"]
    return resp


def _request_id_var() -> ContextVar[Any]:
    """The context variable behind structlog's bound `request_id` (what `bind_contextvars`
    sets), so each request costs one `set` and one `reset` instead of two name lookups."""
    tokens = structlog.contextvars.bind_contextvars(request_id=...)
    structlog.contextvars.reset_contextvars(**tokens)
    return tokens["request_id"].var


_REQUEST_ID = _request_id_var()


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER)
    request_id = (given if given is not None and _CLIENT_ID.fullmatch(given)
                  else _new_request_id())
    token = _REQUEST_ID.set(request_id)
    started = time.perf_counter()
    try:
        resp = await _guarded(request, handler)
    finally:
        _REQUEST_ID.reset(token)
    method = request.method if request.method in KNOWN_METHODS else "OTHER"
    request.app[METRICS].observe_request(_route_name(request), method, resp.status,
                                         time.perf_counter() - started)
    resp.headers[REQUEST_ID_HEADER] = request_id
    resp.headers["Server"] = SERVER_HEADER
    return resp


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        validate.check_target(request)
        return await handler(request)
    except errors.ApiError as exc:
        return errors.response(exc.status, exc.code, exc.message, exc.field)
    except EngineError as exc:
        return errors.response(exc.status_hint, exc.code, exc.message, exc.field)
    except web.HTTPException as exc:
        return _http_error(exc)
    except Exception:
        _log.exception("request_failed", path=request.path, method=request.method)
        return errors.response(500, "internal", "internal error; see the gateway log")
