"""Retention and deletion: remove traffic older than a date, or every call of one caller.

`purge_before(pool, before)` deletes what is older than `before` (epoch seconds):
- calls made before it, with their candidate sessions and match history;
- sessions whose last activity is before it, with all their events;
- the events before it of sessions still active after it (their summary stays on the session);
- visitors last seen before it that have no session left.
`purge_caller(pool, caller)` deletes one caller's calls (E.164), with their candidates and
match history. Neither touches the configuration (sites, sources, numbers).

Rows go in batches of `batch` per table, each batch its own short transaction, so a purge of
millions of rows never holds long locks against the live write-behind writer. Counts are
returned per table.

A running gateway keeps in memory what it loaded at start (recent sessions for number
stickiness and scoring, recent calls for caller history and idempotent retries) and its spool
may hold records the database has not seen yet. Purging data older than the engine's horizon
(30 days by default) is safe while it runs; to make a purged caller or recent session vanish
from the live engine too, restart it after the purge (see SECURITY.md).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import asyncpg

BATCH = 5000  # rows per DELETE: a batch commits in milliseconds, so the writer barely waits

CALLS_BEFORE = "SELECT id FROM calls WHERE at < to_timestamp($1) ORDER BY at LIMIT $2"
CALLS_OF = "SELECT id FROM calls WHERE caller = $1 ORDER BY at LIMIT $2"
DELETE_CANDIDATES = "DELETE FROM call_candidates WHERE call_id = ANY($1::text[])"
DELETE_MATCHES = "DELETE FROM call_matches WHERE call_id = ANY($1::text[])"
DELETE_CALLS = "DELETE FROM calls WHERE id = ANY($1::text[])"
DELETE_SESSIONS = """
DELETE FROM sessions WHERE id IN (
    SELECT id FROM sessions WHERE last_activity < to_timestamp($1) LIMIT $2)
RETURNING id
"""
DELETE_EVENTS_OF = "DELETE FROM session_events WHERE session = ANY($1::text[])"
# Sessions that straddle the date: only their old events go (through the last_activity index).
DELETE_OLD_EVENTS = """
DELETE FROM session_events e USING sessions s
WHERE e.session = s.id AND s.last_activity >= to_timestamp($1)
  AND s.started_at < to_timestamp($1) AND e.at < to_timestamp($1)
"""
DELETE_VISITORS = """
DELETE FROM visitors WHERE id IN (
    SELECT v.id FROM visitors v
    WHERE v.last_seen < to_timestamp($1)
      AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.visitor = v.id)
    LIMIT $2)
"""


@dataclass
class Purged:
    """Rows deleted, per table."""

    calls: int = 0
    candidates: int = 0
    matches: int = 0
    sessions: int = 0
    events: int = 0
    visitors: int = 0

    def summary(self) -> str:
        return ", ".join(f"{getattr(self, f.name)} {f.name}" for f in fields(self))

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


def _count(status: str) -> int:
    """Rows affected, from a command status such as "DELETE 42"."""
    return int(status.rsplit(" ", 1)[-1])


async def _calls(pool: asyncpg.Pool, select: str, key: object, batch: int,
                 out: Purged, *, deleted: list[str] | None) -> None:
    """Delete the calls `select` finds (with candidates and matches), `batch` at a time;
    their ids go to `deleted` when given."""
    while True:
        async with pool.acquire() as conn, conn.transaction():
            ids = [r["id"] for r in await conn.fetch(select, key, batch)]
            if not ids:
                return
            out.candidates += _count(await conn.execute(DELETE_CANDIDATES, ids))
            out.matches += _count(await conn.execute(DELETE_MATCHES, ids))
            out.calls += _count(await conn.execute(DELETE_CALLS, ids))
        if deleted is not None:
            deleted.extend(ids)
        if len(ids) < batch:
            return


async def _sessions(pool: asyncpg.Pool, before: float, batch: int, out: Purged) -> None:
    while True:
        async with pool.acquire() as conn, conn.transaction():
            ids = [r["id"] for r in await conn.fetch(DELETE_SESSIONS, before, batch)]
            out.sessions += len(ids)
            if ids:
                out.events += _count(await conn.execute(DELETE_EVENTS_OF, ids))
        if len(ids) < batch:
            break
    async with pool.acquire() as conn:
        out.events += _count(await conn.execute(DELETE_OLD_EVENTS, before))


async def _visitors(pool: asyncpg.Pool, before: float, batch: int, out: Purged) -> None:
    while True:
        async with pool.acquire() as conn:
            deleted = _count(await conn.execute(DELETE_VISITORS, before, batch))
        out.visitors += deleted
        if deleted < batch:
            return


async def purge_before(pool: asyncpg.Pool, before: float, *, batch: int = BATCH,
                       deleted: list[str] | None = None) -> Purged:
    """Delete calls, sessions, events and visitors older than `before` (epoch seconds);
    the ids of the deleted calls go to `deleted` when given."""
    out = Purged()
    await _calls(pool, CALLS_BEFORE, before, batch, out, deleted=deleted)
    await _sessions(pool, before, batch, out)
    await _visitors(pool, before, batch, out)  # after sessions: only visitors left without any
    return out


async def purge_caller(pool: asyncpg.Pool, caller: str, *, batch: int = BATCH,
                       deleted: list[str] | None = None) -> Purged:
    """Delete every call from `caller` (E.164, as stored) with candidates and matches; the
    ids of the deleted calls go to `deleted` when given."""
    out = Purged()
    await _calls(pool, CALLS_OF, caller, batch, out, deleted=deleted)
    return out
