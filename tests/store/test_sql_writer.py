"""The write-behind SQL on real Postgres: one statement per kind of record, and a batch written
twice (a replayed spool) changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg

from gateway.engine.records import CallRecord, CandidateRecord
from gateway.store import sql_writer
from gateway.store.records import CallUpdate


def call(call_id: str, at: float, sessions: list[str]) -> CallRecord:
    candidates = tuple(CandidateRecord(s, f"v{s}", 0.5 / (i + 1)) for i, s in enumerate(sessions))
    return CallRecord(call_id, "acme", "Google Ads", "+14155550101", "+14155559999",
                      "+18005550100", at, sessions[0] if sessions else None,
                      f"v{sessions[0]}" if sessions else None, 0.5 if sessions else None,
                      candidates, len(sessions) + 5)


async def write(url: str, calls: list[CallRecord], updates: list[CallUpdate]) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await sql_writer.calls(conn, calls)
            await sql_writer.call_updates(conn, updates)
    finally:
        await conn.close()


async def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_a_replayed_batch_changes_nothing(db_url: str) -> None:
    first = call("CA1", 100.0, ["s1", "s2", "s3"])
    retry = call("CA1", 160.0, ["s9"])  # the same call id again in the batch (a retry)
    other = call("CA2", 120.0, [])
    updates = [CallUpdate("CA1", 101.0, status="ringing", carrier="sip"),
               CallUpdate("CA1", 130.0, status="completed", duration=42),
               CallUpdate("CA1", 131.0, dial_status="answered"),
               CallUpdate("CA2", 121.0, recording_url="https://r.test/1"),
               CallUpdate("CA9", 122.0, status="completed")]  # no such call: nothing
    for _ in range(2):
        await write(db_url, [first, other, retry], updates)
    assert await rows(db_url, "SELECT id, session, candidate_count, status, dial_status, duration,"
                              " recording_url, carrier FROM calls ORDER BY id") == [
        ("CA1", "s1", 8, "completed", "answered", 42, None, "sip"),
        ("CA2", None, 5, None, None, None, "https://r.test/1", "twilio"),
    ]
    assert await rows(db_url, "SELECT call_id, rank, session, visitor, likelihood"
                              " FROM call_candidates ORDER BY call_id, rank") == [
        ("CA1", 0, "s1", "vs1", 0.5), ("CA1", 1, "s2", "vs2", 0.25),
        ("CA1", 2, "s3", "vs3", 0.5 / 3),
    ]
    assert await rows(db_url, "SELECT call_id, session, actor, extract(epoch FROM at)"
                              " FROM call_matches ORDER BY id") == [
        ("CA1", "s1", "auto", 100), ("CA2", None, "auto", 120), ("CA1", "s9", "auto", 160),
    ]


def test_updates_fold_to_the_last_value_of_each_field() -> None:
    folded = sql_writer._fold_updates([
        CallUpdate("CA1", 1.0, status="ringing", carrier="sip"),
        CallUpdate("CA2", 1.5, duration=3),
        CallUpdate("CA1", 2.0, status="completed", duration=7),
        CallUpdate("CA1", 3.0, recording_url="u"),
    ])
    assert folded == [("CA1", "completed", None, 7, "u", "sip"), ("CA2", None, None, 3, None, None)]
