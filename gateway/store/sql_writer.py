"""The SQL of the write-behind writer: one idempotent statement per record kind, fed by arrays
(`unnest`) so a batch of thousands is one round trip. Replaying a batch changes nothing."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import asyncpg

from gateway.engine.records import (
    SHARED_KIND,
    CallRecord,
    MatchOverride,
    SessionEvent,
    SessionStarted,
)
from gateway.store.records import CallUpdate

INSERT_SESSIONS = """
INSERT INTO sessions (id, visitor, site, source, number, started_at, last_activity, landing_url,
                      referrer, user_agent, mobile, shared, returning_visitor, attribution,
                      origin)
SELECT u.id, u.visitor, u.site, u.source, u.number, to_timestamp(u.at), to_timestamp(u.at),
       u.landing, u.referrer, u.ua, u.mobile, u.shared, u.ret, u.attribution::jsonb, $14::text
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::text[],
            $8::text[], $9::text[], $10::bool[], $11::bool[], $12::bool[], $13::text[])
     AS u(id, visitor, site, source, number, at, landing, referrer, ua, mobile, shared, ret,
          attribution)
ON CONFLICT (id) DO NOTHING
"""

UPSERT_VISITORS = """
INSERT INTO visitors (id, site, first_seen, last_seen)
SELECT u.id, u.site, to_timestamp(u.first), to_timestamp(u.last)
FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[]) AS u(id, site, first, last)
ON CONFLICT (id) DO UPDATE SET last_seen = greatest(visitors.last_seen, excluded.last_seen)
"""

INSERT_EVENTS = """
INSERT INTO session_events (session, kind, at, origin)
SELECT u.session, u.kind, to_timestamp(u.at), $4::text
FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(session, kind, at)
ON CONFLICT DO NOTHING
RETURNING session, kind, extract(epoch FROM at)::float8 AS at
"""

# Only events that were really inserted reach this update, so a replay cannot count twice.
UPDATE_SESSION_SUMMARY = """
UPDATE sessions s SET
    last_activity = greatest(s.last_activity, to_timestamp(u.last_activity)),
    pageviews = s.pageviews + u.pageviews,
    last_click_to_call = CASE WHEN u.last_c2c IS NULL THEN s.last_click_to_call
        ELSE greatest(s.last_click_to_call, to_timestamp(u.last_c2c)) END,
    hidden_at = CASE WHEN u.hidden IS NULL THEN s.hidden_at
        ELSE greatest(s.hidden_at, to_timestamp(u.hidden)) END,
    shared = s.shared OR u.shared
FROM unnest($1::text[], $2::float8[], $3::int[], $4::float8[], $5::float8[], $6::bool[])
     AS u(id, last_activity, pageviews, last_c2c, hidden, shared)
WHERE s.id = u.id
"""

INSERT_CALLS = """
INSERT INTO calls (id, site, source, to_number, caller, forward_to, at, session, visitor,
                   likelihood, matched_at, candidate_count)
SELECT u.id, u.site, u.source, u.to_number, u.caller, u.forward_to, to_timestamp(u.at),
       u.session, u.visitor, u.likelihood, to_timestamp(u.at), u.n
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::float8[], $8::text[], $9::text[], $10::float8[], $11::int[])
     AS u(id, site, source, to_number, caller, forward_to, at, session, visitor, likelihood, n)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

CANDIDATE_COLUMNS = ("call_id", "rank", "session", "visitor", "likelihood")

INSERT_MATCH = """
INSERT INTO call_matches (call_id, session, previous, actor, at)
VALUES ($1, $2, $3, $4, to_timestamp($5))
ON CONFLICT DO NOTHING
"""

# The automatic first match of every new call in a batch: one statement, rows in batch order.
INSERT_FIRST_MATCHES = """
INSERT INTO call_matches (call_id, session, previous, actor, at)
SELECT u.call_id, u.session, NULL, 'auto', to_timestamp(u.at)
FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(call_id, session, at)
ON CONFLICT DO NOTHING
"""

APPLY_OVERRIDE = """
UPDATE calls SET session = $2, visitor = $3, matched_by = $4, matched_at = to_timestamp($5),
    likelihood = (SELECT likelihood FROM call_candidates WHERE call_id = $1 AND session = $2),
    updated_at = now()
WHERE id = $1 AND (matched_at IS NULL OR matched_at <= to_timestamp($5))
"""

# Carrier callbacks, already folded to one row per call (`_fold_updates`): one statement.
APPLY_UPDATES = """
UPDATE calls c SET status = coalesce(u.status, c.status),
    dial_status = coalesce(u.dial_status, c.dial_status),
    duration = coalesce(u.duration, c.duration),
    recording_url = coalesce(u.recording_url, c.recording_url),
    carrier = coalesce(u.carrier, c.carrier), updated_at = now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[])
     AS u(id, status, dial_status, duration, recording_url, carrier)
WHERE c.id = u.id
"""


async def sessions(conn: asyncpg.Connection, rows: list[SessionStarted],
                   origin: str | None = None) -> None:
    """`origin`: the worker that started them (scale-out), so it does not read them back."""
    if not rows:
        return
    await conn.execute(
        INSERT_SESSIONS,
        [r.session for r in rows], [r.visitor for r in rows], [r.site for r in rows],
        [r.source for r in rows], [r.number for r in rows], [r.at for r in rows],
        [r.landing_url for r in rows], [r.referrer for r in rows], [r.user_agent for r in rows],
        [r.mobile for r in rows], [r.shared for r in rows], [r.returning for r in rows],
        [json.dumps(dict(r.attribution)) for r in rows], origin,
    )
    seen: dict[str, list[Any]] = {}
    for r in rows:
        cur = seen.get(r.visitor)
        if cur is None:
            seen[r.visitor] = [r.site, r.at, r.at]
        else:
            cur[1], cur[2] = min(cur[1], r.at), max(cur[2], r.at)
    await conn.execute(
        UPSERT_VISITORS, list(seen), [v[0] for v in seen.values()],
        [v[1] for v in seen.values()], [v[2] for v in seen.values()],
    )


async def events(conn: asyncpg.Connection, rows: list[SessionEvent],
                 origin: str | None = None) -> None:
    """`origin`: the worker that recorded them (scale-out), so it does not read them back."""
    if not rows:
        return
    inserted = await conn.fetch(
        INSERT_EVENTS, [r.session for r in rows], [r.kind for r in rows], [r.at for r in rows],
        origin,
    )
    summary: dict[str, list[Any]] = defaultdict(lambda: [0.0, 0, None, None, False])
    for row in inserted:
        s = summary[row["session"]]
        kind, at = row["kind"], row["at"]
        if kind == SHARED_KIND:  # the engine's note that the number became shared
            s[4] = True
            continue
        if kind == "hidden":
            s[3] = at if s[3] is None else max(s[3], at)
            continue
        s[0] = max(s[0], at)
        if kind == "pageview":
            s[1] += 1
        elif kind == "click_to_call":
            s[2] = at if s[2] is None else max(s[2], at)
    if summary:
        ids = list(summary)
        vals = list(summary.values())
        await conn.execute(
            UPDATE_SESSION_SUMMARY, ids, [v[0] for v in vals], [v[1] for v in vals],
            [v[2] for v in vals], [v[3] for v in vals], [v[4] for v in vals],
        )


async def calls(conn: asyncpg.Connection, rows: list[CallRecord]) -> None:
    """Insert new calls, then the candidates and the first match of those really inserted
    (a retried webhook or a replayed spool inserts nothing twice)."""
    if not rows:
        return
    inserted = {r["id"] for r in await conn.fetch(
        INSERT_CALLS,
        [r.call_id for r in rows], [r.site for r in rows], [r.source for r in rows],
        [r.to for r in rows], [r.caller for r in rows], [r.forward_to for r in rows],
        [r.at for r in rows], [r.match for r in rows], [r.visitor for r in rows],
        [r.likelihood for r in rows],
        [max(r.candidate_count, len(r.candidates)) for r in rows],
    )}
    fresh = [r for r in rows if r.call_id in inserted]
    await _copy_candidates(conn, fresh)
    if fresh:
        await conn.execute(INSERT_FIRST_MATCHES, [r.call_id for r in fresh],
                           [r.match for r in fresh], [r.at for r in fresh])


async def _copy_candidates(conn: asyncpg.Connection, fresh: list[CallRecord]) -> None:
    """The candidates of calls this transaction has just inserted, by COPY (binary, a fraction
    of the CPU of array parameters). Idempotent without ON CONFLICT: a call inserted now had no
    candidate rows (they reference it, ON DELETE CASCADE), and a call id repeated in the batch
    (a retry after a restart, replayed beside the original) keeps its first record's, as the
    first INSERT of the call did."""
    seen: set[str] = set()
    rows = []
    for r in fresh:
        if r.call_id in seen:
            continue
        seen.add(r.call_id)
        rows += [(r.call_id, rank, c.session, c.visitor, c.likelihood)
                 for rank, c in enumerate(r.candidates)]
    if rows:
        await conn.copy_records_to_table("call_candidates", records=rows, columns=CANDIDATE_COLUMNS)


async def overrides(conn: asyncpg.Connection, rows: list[MatchOverride]) -> None:
    for r in rows:
        await conn.execute(APPLY_OVERRIDE, r.call_id, r.session, r.visitor, r.by, r.at)
        await conn.execute(INSERT_MATCH, r.call_id, r.session, r.previous, r.by, r.at)


async def call_updates(conn: asyncpg.Connection, rows: list[CallUpdate]) -> None:
    """Apply carrier callbacks in one statement (a SIP call brings one with its record)."""
    if rows:
        folded = _fold_updates(rows)
        await conn.execute(APPLY_UPDATES, *[list(col) for col in zip(*folded, strict=True)])


UpdateRow = tuple[str, str | None, str | None, int | None, str | None, str | None]


def _fold_updates(rows: list[CallUpdate]) -> list[UpdateRow]:
    """One row per call: each field's last non-null value in arrival order, which is what
    applying the updates one after another with `coalesce(new, old)` leaves."""
    folded: dict[str, list[Any]] = {}
    for r in rows:
        values = (r.status, r.dial_status, r.duration, r.recording_url, r.carrier)
        row = folded.get(r.call_id)
        if row is None:
            folded[r.call_id] = [r.call_id, *values]
            continue
        for i, value in enumerate(values, 1):
            if value is not None:
                row[i] = value
    return [tuple(row) for row in folded.values()]  # type: ignore[misc]
