"""The website-facing API: number swap and session events (public; site key + Origin check +
per-client rate limit). No database round trip: the engine answers from memory and its records
go to the write-behind writer.

CORS: answers carry `Access-Control-Allow-Origin` only for an origin the site allows. swap.js
posts JSON as `text/plain` (a CORS "simple request"), so browsers send no preflight; a client
that sends `application/json` gets its preflight answered for any configured origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from aiohttp import web

from gateway import log
from gateway.engine.errors import UnknownSession, UnknownSite
from gateway.web import validate
from gateway.web.clients import client_address
from gateway.web.errors import ApiError
from gateway.web.keys import METRICS, STATE
from gateway.web.ratelimit import RateLimiter

EVENT_KINDS = ("pageview", "ping", "click_to_call", "hidden")
MAX_URL = 4096  # longer than any real landing URL; browsers themselves cap near 2 KB-2 MB
MAX_ID = 64  # visitor and session ids are ~24 characters; anything longer is not ours
MAX_UA = 1024  # user agents above this are junk; truncated rather than refused
ENCODED_NUL = "%00"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"  # what web.json_response sends
CORS_MAX_AGE_S = "86400"  # browsers cap preflight caching at 2 h (Chrome) to 24 h (Firefox)
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)

_log = log.get("gateway.web.swap")


def _engine(request: web.Request) -> Any:
    engine = request.app[STATE].engine
    if engine is None:
        raise ApiError(503, "engine not loaded yet")
    return engine


def _cors(request: web.Request, origins: Any, resp: web.StreamResponse) -> None:
    origin = request.headers.get("Origin")
    if origin and origin in origins:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Vary"] = "Origin"


def _swap_response(request: web.Request, answer: dict[str, Any], origins: Any) -> web.Response:
    """The swap answer: never cached, with CORS headers for an allowed origin. Serialised with
    orjson and the headers given up front: `web.json_response` and setting headers one by one
    afterwards cost more than the rest of this handler outside the engine."""
    headers = {"Content-Type": JSON_CONTENT_TYPE, "Cache-Control": "no-store"}
    origin = request.headers.get("Origin")
    if origin and origin in origins:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Vary"] = "Origin"
    return web.Response(body=orjson.dumps(answer), headers=headers)


def _check_origin(request: web.Request, allowed: Any) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and allowed and origin not in allowed:
        raise ApiError(403, f"origin {origin[:200]!r} is not allowed for this site",
                       field="Origin")


def _agent(raw: str) -> str:
    """The user agent as stored: truncated, and with bytes that are not UTF-8 (aiohttp keeps
    them as surrogates) or NUL replaced, since Postgres would refuse the session's record."""
    ua = raw[:MAX_UA]
    if validate.plain(ua):
        return ua
    return ua.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def _answer(v: Any, site: Any) -> dict[str, Any]:
    return {"visitor": v.visitor, "session": v.session, "source": v.source, "number": v.number,
            "formatted": v.formatted, "replaces": list(site.swap_targets)}


async def swap(request: web.Request) -> web.Response:
    doc = await validate.read_object(request)
    key = validate.string(doc, "site", max_len=MAX_ID)
    visitor = validate.string(doc, "visitor", nullable=True, required=False, max_len=MAX_ID)
    url = validate.string(doc, "url", max_len=MAX_URL)
    if url is not None and ENCODED_NUL in url:
        # The engine decodes the landing's query into the session's attribution (utm_*, click
        # ids), which Postgres could not store with a NUL in it.
        raise ApiError(422, "url must not contain a percent-encoded NUL (%00)", field="url")
    referrer = validate.string(doc, "referrer", nullable=True, required=False, max_len=MAX_URL)
    engine = _engine(request)
    try:
        site = engine.site(key)
    except UnknownSite:
        raise ApiError(404, f"no site {key!r}", field="site") from None
    _check_origin(request, site.allowed_origins)
    metrics = request.app[METRICS]
    if not request.app[RATE_LIMITER].allow(client_address(request)):
        v = engine.site_number(key)
        metrics.count_swap(site.key, "rate_limited")
        answer = {**_answer(v, site), "visitor": visitor}
    else:
        ua = _agent(request.headers.get("User-Agent", ""))
        lending = request.app[STATE].lending
        if lending is not None:  # scale-out: out of free numbers here, maybe not elsewhere
            short = engine.short_source(site=key, url=url, referrer=referrer or None,
                                        user_agent=ua, visitor=visitor or None, at=time.time())
            if short is not None:
                await lending.borrow(key, short)
        v = engine.visit(site=key, url=url, referrer=referrer or None, user_agent=ua,
                         visitor=visitor or None, at=time.time())
        request.app[STATE].writer.add(engine.drain())
        metrics.count_swap(site.key, "session" if v.session else "own_number")
        answer = _answer(v, site)
    return _swap_response(request, answer, site.allowed_origins)


async def event(request: web.Request) -> web.Response:
    session = request.match_info["session"]
    if len(session) > MAX_ID:
        raise ApiError(404, "no such session", field="session")
    doc = await validate.read_object(request)
    kind = validate.string(doc, "kind", max_len=32)
    if kind not in EVENT_KINDS:
        raise ApiError(422, f"kind must be one of {', '.join(EVENT_KINDS)}", field="kind")
    engine = _engine(request)
    try:
        engine.activity(session=session, kind=kind, at=time.time())
    except UnknownSession:
        follower = request.app[STATE].follower
        if follower is None:
            raise
        # Scale-out: a session another process started moments ago; it reaches Postgres
        # within that process's flush interval. Read until it shows up, for a bounded time.
        await _await_session(follower, engine, session, kind)
    request.app[STATE].writer.add(engine.drain())
    resp = web.Response(status=204)
    _cors(request, _all_origins(request), resp)
    return resp


# Pauses between reads while an unknown session may still be on its way from another process:
# about three flush intervals in all, then it is unknown.
_CATCH_UP_PAUSES_S = (0.0, 0.1, 0.2, 0.3)


async def _await_session(follower: Any, engine: Any, session: str, kind: str) -> None:
    for pause in _CATCH_UP_PAUSES_S:
        await asyncio.sleep(pause)
        with contextlib.suppress(Exception):  # the database away: the session stays unknown
            await follower.catch_up(after=time.monotonic())
        with contextlib.suppress(UnknownSession):
            engine.activity(session=session, kind=kind, at=time.time())
            return
    raise UnknownSession(session)


def _all_origins(request: web.Request) -> frozenset[str]:
    """Every origin any site allows (preflights and events carry no site key)."""
    return request.app[STATE].origins


async def preflight(request: web.Request) -> web.Response:
    resp = web.Response(status=204)
    origin = request.headers.get("Origin")
    if origin and origin in _all_origins(request):
        resp.headers.update({
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": CORS_MAX_AGE_S,
            "Vary": "Origin",
        })
    return resp


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/swap", swap), web.options("/v1/swap", preflight),
        web.post("/v1/sessions/{session}/events", event),
        web.options("/v1/sessions/{session}/events", preflight),
    ]
