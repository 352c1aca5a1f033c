"""Rebuild the engine from Postgres at start: configuration, recent sessions, recent calls.

Only what can still matter is loaded: sessions active within the longest match window or
stickiness window of any source, and calls within the same horizon (caller history and
idempotent retries). Rows are turned into engine states as they are restored.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import asyncpg

from gateway import log
from gateway.engine import Engine
from gateway.engine.records import CallState, SessionState
from gateway.store.config_repo import load_config

HORIZON_DEFAULT_S = 30 * 86400.0  # the default match window and stickiness window: 30 days
# Collector thresholds for the long-lived server process (Python's default is 700, 10, 10).
# The youngest generation keeps the default: per-request garbage mostly dies by reference
# count, and a larger one measured slower (it walks more objects, colder). The oldest one is
# collected after 100 collections of the middle one instead of 10: a full collection walks
# every object not frozen (the calls and pending records made since start), measured at 40-60
# ms for 90,000 objects, and at a few thousand SIP calls a second the default ran one every
# second or two, each a stall that SIP peers answer with retransmissions. Cyclic garbage that
# reaches the oldest generation is freed ten times later; per-request cycles die young.
GC_THRESHOLDS = (700, 10, 100)

SESSIONS_SQL = """
SELECT id, visitor, site, source, number, extract(epoch FROM started_at)::float8,
       extract(epoch FROM last_activity)::float8, mobile, shared, pageviews,
       extract(epoch FROM last_click_to_call)::float8, extract(epoch FROM hidden_at)::float8
FROM sessions WHERE last_activity >= to_timestamp($1) ORDER BY started_at, id
"""

CALLS_SQL = """
SELECT id, site, to_number, caller, extract(epoch FROM at)::float8, source, session, visitor
FROM calls WHERE at >= to_timestamp($1) ORDER BY at, id
"""

_log = log.get("gateway.store.loader")


def horizon(config: dict[str, Any]) -> float:
    longest = HORIZON_DEFAULT_S
    for site in config.get("sites", []):
        longest = max(longest, float(site.get("stickiness_days", 30)) * 86400.0)
        for source in site.get("sources", []):
            longest = max(longest, float(source.get("match_window", HORIZON_DEFAULT_S)))
    return longest


def _session_states(rows: list[tuple[Any, ...]]) -> Iterator[SessionState]:
    for r in rows:
        yield SessionState(*r)


def _call_states(rows: list[tuple[Any, ...]]) -> Iterator[CallState]:
    for r in rows:
        yield CallState(*r)


async def build_engine(pool: asyncpg.Pool, now: float | None = None) -> Engine:
    """A new engine from the stored configuration with recent sessions and calls restored."""
    engine, _, _ = await _build(pool, now, follow=False)
    return engine


async def build_followed_engine(pool: asyncpg.Pool,
                                now: float | None = None) -> tuple[Engine, str, int]:
    """`build_engine` for a process among several (scale-out): everything is read in one
    REPEATABLE READ transaction, whose snapshot (returned, with the configuration's epoch) is
    where `cluster.Follower` starts reading what the other processes write next. The engine
    owns no number yet: the lease keeper gives it its share."""
    return await _build(pool, now, follow=True)


async def _build(pool: asyncpg.Pool, now: float | None,
                 follow: bool) -> tuple[Engine, str, int]:
    started = time.perf_counter()
    now = time.time() if now is None else now
    snapshot, epoch = "", 0
    async with pool.acquire() as conn:
        transaction = conn.transaction(isolation="repeatable_read", readonly=True)
        if follow:
            await transaction.start()
        try:
            if follow:
                snapshot = await conn.fetchval("SELECT pg_current_snapshot()::text")
                epoch = await conn.fetchval("SELECT epoch FROM config_epoch")
            config = await load_config(conn)
            engine = Engine.from_config(config)
            if follow:
                engine.own_numbers(())
            since = now - horizon(config)
            sessions = await conn.fetch(SESSIONS_SQL, since)
            engine.restore_sessions(_session_states([tuple(r) for r in sessions]))
            del sessions
            calls = await conn.fetch(CALLS_SQL, since)
            engine.restore_calls(_call_states([tuple(r) for r in calls]))
        finally:
            if follow:
                await transaction.rollback()
    # What was just restored lives as long as the process: move it out of the collector's
    # sight, or every later collection walks a million objects (10% of visit throughput).
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    _log.info("engine_loaded", sessions=engine_sessions(engine), calls=len(calls),
              seconds=round(time.perf_counter() - started, 3))
    return engine, snapshot, epoch


def engine_sessions(engine: Engine) -> int:
    counter = getattr(engine, "sessions_count", None)
    return int(counter()) if callable(counter) else -1
