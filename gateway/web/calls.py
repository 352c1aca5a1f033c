"""The call log API (admin key): list calls, read one with its candidate sessions ("check for
other sessions"), and override the attached session ("use")."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web

from gateway import log
from gateway.store import calls_repo
from gateway.web import validate
from gateway.web.auth import require_admin
from gateway.web.errors import ApiError
from gateway.web.keys import STATE

PAGE_DEFAULT = 50
# Times a filter or cursor may name: 1970 to 9999-01-01, inside what both Python's datetime and
# PostgreSQL's timestamptz hold, with a year to spare for a report's period arithmetic.
EARLIEST_S = 0.0
LATEST_S = 253_370_764_800.0
PAGE_MAX = 500  # one page stays a few hundred KB at most
CLICK_IDS = ("gclid", "gbraid", "wbraid", "msclkid", "fbclid")
PURGE_CHECK_TIMEOUT_S = 1.0  # an override does not wait longer on a slow database than this
PURGE_RECHECK_S = 0.5  # a kicked writer has flushed a just-made call by then (~ms per batch)

_log = log.get("gateway.web.calls")


def _pool(request: web.Request) -> asyncpg.Pool:
    pool = request.app[STATE].pool
    if pool is None:
        raise ApiError(503, "database not ready")
    return pool


def parse_time(raw: str | None, name: str) -> float | None:
    """Epoch seconds, or an ISO 8601 date/time (UTC when no offset is given)."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw) if raw.replace(".", "", 1).isdigit() else _iso(raw)
    except ValueError:
        raise ApiError(422, f"{name} must be epoch seconds or an ISO 8601 date", field=name) \
            from None
    if not in_range(value):
        raise ApiError(422, f"{name} must be between 1970 and 9999", field=name)
    return value


def in_range(at: float) -> bool:
    return EARLIEST_S <= at <= LATEST_S  # False for NaN too


def _iso(raw: str) -> float:
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def cursor_out(row: dict[str, Any]) -> str:
    """The opaque cursor continuing after `row` (also used by the dashboard's page links)."""
    return base64.urlsafe_b64encode(json.dumps([row["at"], row["id"]]).encode()).decode()


def _cursor_in(raw: str | None) -> tuple[float, str] | None:
    if not raw:
        return None
    try:
        at, call_id = json.loads(base64.urlsafe_b64decode(raw.encode()))
        if isinstance(at, int | float) and in_range(at) and isinstance(call_id, str):
            return float(at), call_id
    except (ValueError, TypeError, binascii.Error):
        pass
    raise ApiError(422, "cursor is not one this API returned", field="cursor")


def _limit(raw: str | None) -> int:
    if raw is None:
        return PAGE_DEFAULT
    if not validate.digits(raw, 6) or not 1 <= int(raw) <= PAGE_MAX:
        raise ApiError(422, f"limit must be 1..{PAGE_MAX}", field="limit")
    return int(raw)


def call_filter(request: web.Request) -> calls_repo.CallFilter:
    q = request.query
    return calls_repo.CallFilter(
        site=q.get("site") or None, source=q.get("source") or None,
        since=parse_time(q.get("from"), "from"), until=parse_time(q.get("to"), "to"),
        min_likelihood=validate.query_float(request, "min_likelihood"),
        max_likelihood=validate.query_float(request, "max_likelihood"),
        before=_cursor_in(q.get("cursor")), limit=_limit(q.get("limit")),
    )


async def list_calls(request: web.Request) -> web.Response:
    require_admin(request)
    f = call_filter(request)
    async with _pool(request).acquire() as conn:
        rows = await calls_repo.list_calls(conn, f)
    nxt = cursor_out(rows[-1]) if len(rows) == f.limit else None
    return web.json_response({"calls": rows, "next": nxt})


def _session_view(s: dict[str, Any] | None) -> dict[str, Any] | None:
    if s is None:
        return None
    attribution = s.get("attribution") or {}
    return {
        "session": s["id"], "visitor": s["visitor"], "source": s["source"],
        "landing_page": s["landing_url"], "referrer": s["referrer"], "mobile": s["mobile"],
        "shared": s["shared"], "pageviews": s["pageviews"], "started_at": s["started_at"],
        "last_activity": s["last_activity"], "last_click_to_call": s["last_click_to_call"],
        "utm": {k: v for k, v in attribution.items() if k.startswith("utm_")},
        "click_ids": {k: v for k, v in attribution.items() if k in CLICK_IDS},
    }


async def call_view(conn: asyncpg.Connection, call_id: str) -> dict[str, Any] | None:
    call = await calls_repo.get_call(conn, call_id)
    if call is None:
        return None
    ids = [c["session"] for c in call["candidates"]]
    details = await calls_repo.sessions(conn, ids)
    call["candidates"] = [
        {"session": c["session"], "visitor": c["visitor"], "likelihood": c["likelihood"],
         "details": _session_view(details.get(c["session"]))} for c in call["candidates"]
    ]
    attached = _session_view(details.get(call["session"])) if call["session"] else None
    if call["session"] and attached is None:
        attached = _session_view((await calls_repo.sessions(conn, [call["session"]])).get(
            call["session"]))
    call["attached"] = attached
    call["landing_page"] = attached["landing_page"] if attached else None
    call["utm"] = attached["utm"] if attached else {}
    call["click_ids"] = attached["click_ids"] if attached else {}
    return call


async def get_call(request: web.Request) -> web.Response:
    require_admin(request)
    call_id = request.match_info["call"]
    async with _pool(request).acquire() as conn:
        call = await call_view(conn, call_id)
    if call is None:
        raise ApiError(404, f"no call {call_id[:80]!r}", field="call")
    return web.json_response(call)


async def override(request: web.Request) -> web.Response:
    """Attach another session to the call (the user's "use"); the engine remembers it for the
    caller's history and the store keeps the previous match in the call's history."""
    who = require_admin(request)
    call_id = request.match_info["call"]
    doc = await validate.read_object(request)
    session = validate.string(doc, "session", max_len=64)
    assert session is not None
    return web.json_response(await apply_override(request.app, call_id, session, who))


async def apply_override(app: web.Application, call_id: str, session: str,
                         who: str) -> dict[str, Any]:
    """The user's "use": attach `session` to the call, durably, through the engine (which
    remembers it for the caller's history). Shared by the API and the dashboard."""
    state = app[STATE]
    if state.engine is None or state.writer is None:
        raise ApiError(503, "engine not loaded yet")
    if await _purged(state, call_id):
        raise ApiError(404, f"no call {call_id[:80]!r}", field="call")
    result = state.engine.override(call_id=call_id, session=session, by=who, at=time.time())
    records = state.engine.drain()
    await state.writer.add_durable(records)
    _log.info("call_overridden", call_id=call_id, session=session, by=who)
    return _override_view(result, records)


async def _purged(state: Any, call_id: str) -> bool:
    """True when the call is gone from Postgres (`dni-gateway purge`) though the live engine
    still holds it: its match history row would refer to no call and fail every later write.
    A call made a moment ago may still be queued: the writer is asked to flush and the call is
    looked for again. A database that does not answer refuses nothing (the override is
    spooled like any record)."""
    if state.pool is None or await _stored(state.pool, call_id) is not False:
        return False
    state.writer.kick()
    await asyncio.sleep(PURGE_RECHECK_S)
    return await _stored(state.pool, call_id) is False


async def _stored(pool: asyncpg.Pool, call_id: str) -> bool | None:
    """Whether Postgres has the call; None when it does not answer in time."""
    try:
        async with asyncio.timeout(PURGE_CHECK_TIMEOUT_S), pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT 1 FROM calls WHERE id = $1", call_id))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None


def _override_view(result: Any, records: list[Any]) -> dict[str, Any]:
    previous = next((getattr(r, "previous", None) for r in records if hasattr(r, "previous")),
                    None)
    return {"id": result.call_id, "session": result.match, "visitor": result.visitor,
            "likelihood": result.likelihood, "previous": previous}


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/calls", list_calls), web.get("/v1/calls/{call}", get_call),
            web.post("/v1/calls/{call}/match", override)]
