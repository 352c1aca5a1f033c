"""Reading the call log: filtered, cursor-paginated lists and one call with its candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

CALL_COLUMNS = """
c.id, c.site, c.source, c.to_number, c.caller, c.forward_to, extract(epoch FROM c.at)::float8 AS at,
c.session, c.visitor, c.likelihood, c.carrier, c.status, c.dial_status, c.duration,
c.recording_url, c.matched_by, extract(epoch FROM c.matched_at)::float8 AS matched_at,
c.candidate_count
"""

SESSION_COLUMNS = """
id, visitor, source, number, landing_url, referrer, mobile, shared, pageviews, attribution,
extract(epoch FROM started_at)::float8 AS started_at,
extract(epoch FROM last_activity)::float8 AS last_activity,
extract(epoch FROM last_click_to_call)::float8 AS last_click_to_call,
extract(epoch FROM hidden_at)::float8 AS hidden_at
"""


@dataclass(frozen=True, slots=True)
class CallFilter:
    site: str | None = None
    source: str | None = None
    since: float | None = None
    until: float | None = None
    min_likelihood: float | None = None
    max_likelihood: float | None = None
    before: tuple[float, str] | None = None  # cursor: (at, id) of the last row already seen
    limit: int = 50


async def list_calls(conn: asyncpg.Connection, f: CallFilter) -> list[dict[str, Any]]:
    """Newest first; `before` continues after the last row of the previous page."""
    rows = await conn.fetch(
        f"SELECT {CALL_COLUMNS} FROM calls c"  # noqa: S608 - columns are constants
        " WHERE ($1::text IS NULL OR c.site = $1) AND ($2::text IS NULL OR c.source = $2)"
        " AND ($3::float8 IS NULL OR c.at >= to_timestamp($3))"
        " AND ($4::float8 IS NULL OR c.at < to_timestamp($4))"
        " AND ($5::float8 IS NULL OR c.likelihood >= $5)"
        " AND ($6::float8 IS NULL OR c.likelihood < $6)"
        " AND ($7::float8 IS NULL OR (c.at, c.id) < (to_timestamp($7), $8::text))"
        " ORDER BY c.at DESC, c.id DESC LIMIT $9",
        f.site, f.source, f.since, f.until, f.min_likelihood, f.max_likelihood,
        f.before[0] if f.before else None, f.before[1] if f.before else None, f.limit,
    )
    return [dict(r) for r in rows]


async def get_call(conn: asyncpg.Connection, call_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {CALL_COLUMNS} FROM calls c WHERE c.id = $1", call_id  # noqa: S608
    )
    if row is None:
        return None
    call = dict(row)
    candidates = await conn.fetch(
        "SELECT rank, session, visitor, likelihood FROM call_candidates WHERE call_id = $1"
        " ORDER BY rank", call_id,
    )
    call["candidates"] = [dict(c) for c in candidates]
    history = await conn.fetch(
        "SELECT session, previous, actor, extract(epoch FROM at)::float8 AS at"
        " FROM call_matches WHERE call_id = $1 ORDER BY at, id", call_id,
    )
    call["history"] = [dict(h) for h in history]
    return call


async def sessions(conn: asyncpg.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ANY($1::text[])", ids  # noqa: S608
    )
    return {r["id"]: dict(r) for r in rows}


async def events(conn: asyncpg.Connection, session: str, limit: int = 200) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT kind, extract(epoch FROM at)::float8 AS at FROM session_events"
        " WHERE session = $1 ORDER BY at LIMIT $2", session, limit,
    )
    return [dict(r) for r in rows]
