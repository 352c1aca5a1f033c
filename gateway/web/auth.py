"""Admin authentication: a bearer API key compared in constant time, never logged."""

from __future__ import annotations

import hmac

from aiohttp import web

from gateway.web.errors import ApiError
from gateway.web.keys import STATE


def key_matches(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def require_admin(request: web.Request) -> str:
    """Return the principal ("admin") or raise 401. The dashboard's session cookie is checked
    by the UI layer; the API takes only `Authorization: Bearer <key>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "missing bearer API key (Authorization: Bearer <key>)",
                       field="Authorization")
    if not key_matches(token.strip(), request.app[STATE].admin_key):
        raise ApiError(401, "wrong API key", field="Authorization")
    return "admin"
