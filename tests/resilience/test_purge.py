"""Retention and deletion against real PostgreSQL: `gateway.store.purge` row by row, the
`dni-gateway purge` command as an operator runs it, and a caller's deletion while the gateway
is live (a retried webhook does not bring the call back)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.engine.records import CallRecord, SessionEvent
from gateway.store.db import create_pool
from gateway.store.purge import Purged, purge_before, purge_caller
from gateway.store.records import CallUpdate
from gateway.store.spool import Spool, purge_quarantine
from gateway.web.keys import STATE
from tests.conftest import Gateway
from tests.web.test_swap import swap, wait_for
from tests.web.test_voice import post_call

OLD = datetime(2020, 1, 1, tzinfo=UTC)
CUT = datetime(2021, 1, 1, tzinfo=UTC)
NEW = datetime(2022, 1, 1, tzinfo=UTC)
CALLER, OTHER = "+14155559999", "+14155558888"

SEED = [
    # visitors: id, site, first_seen, last_seen
    ("INSERT INTO visitors VALUES ($1, 'acme', $2, $3)", [
        ("v_old", OLD, OLD), ("v_straddle", OLD, OLD), ("v_new", NEW, NEW),
        ("v_orphan", OLD, OLD)]),
    # sessions: id, visitor, started_at, last_activity
    ("INSERT INTO sessions (id, visitor, site, source, number, started_at, last_activity)"
     " VALUES ($1, $2, 'acme', 'Google Ads', '+14155550101', $3, $4)", [
        ("s_old", "v_old", OLD, OLD), ("s_straddle", "v_straddle", OLD, NEW),
        ("s_new", "v_new", NEW, NEW)]),
    ("INSERT INTO session_events VALUES ($1, $2, $3)", [
        ("s_old", "pageview", OLD), ("s_old", "ping", OLD), ("s_straddle", "pageview", OLD),
        ("s_straddle", "ping", NEW), ("s_new", "pageview", NEW)]),
    ("INSERT INTO calls (id, site, source, to_number, caller, forward_to, at, session)"
     " VALUES ($1, 'acme', 'Google Ads', '+14155550101', $2, '+18005550100', $3, $4)", [
        ("c_old", CALLER, OLD, "s_old"), ("c_new", CALLER, NEW, "s_new"),
        ("c_other", OTHER, NEW, "s_new")]),
    ("INSERT INTO call_candidates VALUES ($1, $2, $3, $4, 0.5)", [
        ("c_old", 0, "s_old", "v_old"), ("c_old", 1, "s_straddle", "v_straddle"),
        ("c_new", 0, "s_new", "v_new"), ("c_other", 0, "s_new", "v_new")]),
    ("INSERT INTO call_matches (call_id, session, actor, at) VALUES ($1, $2, 'auto', $3)", [
        ("c_old", "s_old", OLD), ("c_new", "s_new", NEW), ("c_other", "s_new", NEW)]),
]


async def seed(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        for sql, rows in SEED:
            await conn.executemany(sql, rows)
    finally:
        await conn.close()


async def ids(db_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(db_url)
    try:
        return {
            "visitors": {r[0] for r in await conn.fetch("SELECT id FROM visitors")},
            "sessions": {r[0] for r in await conn.fetch("SELECT id FROM sessions")},
            "events": {(r[0], r[1]) for r in await conn.fetch(
                "SELECT session, kind FROM session_events")},
            "calls": {r[0] for r in await conn.fetch("SELECT id FROM calls")},
            "candidates": {(r[0], r[1]) for r in await conn.fetch(
                "SELECT call_id, session FROM call_candidates")},
            "matches": {r[0] for r in await conn.fetch("SELECT call_id FROM call_matches")},
        }
    finally:
        await conn.close()


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db_url)
    yield p
    await p.close()


@pytest.mark.parametrize("batch", [1, 2, 5000])
async def test_purge_before_deletes_what_is_older_in_batches(db_url: str, pool: asyncpg.Pool,
                                                            batch: int) -> None:
    await seed(db_url)
    done = await purge_before(pool, CUT.timestamp(), batch=batch)
    assert done == Purged(calls=1, candidates=2, matches=1, sessions=1, events=3, visitors=2)
    assert await ids(db_url) == {
        "visitors": {"v_straddle", "v_new"},  # v_straddle still has a session after the date
        "sessions": {"s_straddle", "s_new"},
        "events": {("s_straddle", "ping"), ("s_new", "pageview")},
        "calls": {"c_new", "c_other"},
        "candidates": {("c_new", "s_new"), ("c_other", "s_new")},
        "matches": {"c_new", "c_other"},
    }
    assert (await purge_before(pool, CUT.timestamp(), batch=batch)).total == 0  # idempotent


async def test_purge_caller_deletes_only_that_callers_calls(db_url: str,
                                                           pool: asyncpg.Pool) -> None:
    await seed(db_url)
    done = await purge_caller(pool, CALLER, batch=1)
    assert done == Purged(calls=2, candidates=3, matches=2)
    left = await ids(db_url)
    assert left["calls"] == {"c_other"} and left["matches"] == {"c_other"}
    assert left["candidates"] == {("c_other", "s_new")}
    assert len(left["sessions"]) == 3  # visits are not the caller's: they stay
    assert (await purge_caller(pool, CALLER)).total == 0


def cli(db_url: str, *args: str, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url}
    if data is not None:
        env["DNI_DATA_DIR"] = str(data)
    return subprocess.run([sys.executable, "-m", "gateway", "purge", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def quarantined_call(call_id: str, caller: str | None, at: datetime) -> CallRecord:
    return CallRecord(call_id=call_id, site="acme", source="Google Ads", to="+14155550101",
                      caller=caller, forward_to="+18005550100", at=at.timestamp(),
                      match=None, visitor=None, likelihood=None, candidates=())


def quarantine(spool_dir: Path) -> None:
    """Records Postgres refused, in the quarantine files of two worker slots: calls, a status
    update of a quarantined call and one of a call the database holds (c_other, OTHER's)."""
    Spool(spool_dir).quarantine([
        (quarantined_call("q_old", CALLER, OLD), "refused"),
        (quarantined_call("q_new", OTHER, NEW), "refused"),
        (CallUpdate(call_id="q_new", at=NEW.timestamp(), status="completed"), "refused"),
        (CallUpdate(call_id="c_other", at=NEW.timestamp(), recording_url="https://r/1"),
         "refused"),
        (SessionEvent(session="s_old", kind="ping", at=OLD.timestamp()), "refused")])
    Spool(spool_dir / "w1").quarantine([(quarantined_call("q_w1", OTHER, OLD), "refused")])


def left_in_quarantine(spool_dir: Path) -> list[tuple[str, str]]:
    return sorted((doc["t"], doc["r"].get("call_id") or doc["r"]["session"])
                  for path in spool_dir.glob("**/quarantine/*.jsonl")
                  for doc in map(json.loads, path.read_text().splitlines()))


def test_quarantined_records_are_purged_like_rows(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    quarantine(spool_dir)
    # OTHER's two quarantined calls, the update of one, and the update of the call the
    # database purge deleted (its id comes from there: the update alone names no caller).
    assert purge_quarantine(spool_dir, caller=OTHER, call_ids=["c_other"]) == 4
    assert left_in_quarantine(spool_dir) == [("call", "q_old"), ("event", "s_old")]
    assert not list((spool_dir / "w1").glob("quarantine/*"))  # emptied: removed
    assert purge_quarantine(spool_dir, before=CUT.timestamp()) == 2
    assert left_in_quarantine(spool_dir) == []
    quarantine(spool_dir)
    assert purge_quarantine(spool_dir, before=CUT.timestamp()) == 3
    assert left_in_quarantine(spool_dir) == [
        ("call", "q_new"), ("call_update", "c_other"), ("call_update", "q_new")]
    assert purge_quarantine(spool_dir, caller="+19999999999") == 0
    assert not list(spool_dir.glob("**/.purging-*"))  # no temporary file left behind


def test_a_whole_day_before_the_date_goes_with_what_cannot_be_read(tmp_path: Path) -> None:
    """A day's file wholly before --before is deleted whole, lines that do not parse too;
    a later day's unreadable line is kept unless it holds the caller's number."""
    directory = tmp_path / "spool" / "quarantine"
    directory.mkdir(parents=True)
    (directory / "2020-06-01.jsonl").write_bytes(b'{"t":"call","r":{}}\n\xff torn')
    (directory / "2022-06-01.jsonl").write_bytes(
        b"\xff torn " + OTHER.encode() + b"\n\xfe other\n")
    assert purge_quarantine(tmp_path / "spool", before=CUT.timestamp()) == 2
    assert sorted(x.name for x in directory.iterdir()) == ["2022-06-01.jsonl"]
    assert purge_quarantine(tmp_path / "spool", caller=OTHER) == 1
    assert (directory / "2022-06-01.jsonl").read_bytes() == b"\xfe other\n"


def test_a_purge_loses_nothing_the_gateway_quarantines_meanwhile(tmp_path: Path) -> None:
    """The writer appends under the file's lock and follows a file the purge replaced: every
    record appended while purges rewrite the same file is still there."""
    spool = Spool(tmp_path / "spool")
    kept, gone, appends = "+14155550001", "+14155550002", 150
    done = threading.Event()

    def purge_until_done() -> None:
        while not done.is_set():
            purge_quarantine(tmp_path / "spool", caller=gone)

    purger = threading.Thread(target=purge_until_done)
    purger.start()
    try:
        for k in range(appends):
            spool.quarantine([(quarantined_call(f"k{k}", kept, NEW), "refused"),
                              (quarantined_call(f"g{k}", gone, NEW), "refused")])
    finally:
        done.set()
        purger.join(timeout=30)
    purge_quarantine(tmp_path / "spool", caller=gone)
    assert left_in_quarantine(tmp_path / "spool") == sorted(
        ("call", f"k{k}") for k in range(appends))


async def test_the_purge_command(db_url: str, tmp_path: Path) -> None:
    await seed(db_url)
    quarantine(tmp_path / "spool")
    where = (tmp_path / "spool").resolve()
    run = await asyncio.to_thread(cli, db_url, "--caller", "(415) 555-8888", data=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "purged the calls of +14155558888: 1 calls, 1 candidates, 1 matches, 0 sessions, "
        "0 events, 0 visitors", f"purged 4 quarantined records under {where}"]
    run = await asyncio.to_thread(cli, db_url, "--before", "2021-01-01", "--batch", "2",
                                  data=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "purged what is older than 2021-01-01T00:00:00+00:00: 1 calls, 2 candidates, "
        "1 matches, 1 sessions, 3 events, 2 visitors",
        f"purged 2 quarantined records under {where}"]
    assert (await ids(db_url))["calls"] == {"c_new"}
    assert left_in_quarantine(tmp_path / "spool") == []
    run = await asyncio.to_thread(cli, db_url, "--caller", CALLER, data=tmp_path / "elsewhere")
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == (
        f"no spool at {(tmp_path / 'elsewhere').resolve() / 'spool'} (set DNI_DATA_DIR to the "
        "gateway's): no quarantined records purged")


@pytest.mark.parametrize(("args", "says"), [
    (["--caller", "not a number"], "not a phone number"),
    (["--before", "2999-01-01"], "in the future"),
    (["--before", "yesterday"], "expected ISO 8601"),
    (["--before", "2021-01-01", "--caller", CALLER], "not allowed with"),
    ([], "one of the arguments"),
    (["--before", "2021-01-01", "--batch", "0"], "at least 1"),
])
async def test_the_purge_command_refuses_bad_arguments(db_url: str, args: list[str],
                                                       says: str) -> None:
    await seed(db_url)
    run = await asyncio.to_thread(cli, db_url, *args)
    assert run.returncode == 2 and says in run.stderr, run.stderr
    assert len((await ids(db_url))["calls"]) == 3  # nothing was deleted


async def test_a_caller_is_deleted_while_the_gateway_runs(gateway: Gateway, db_url: str,
                                                          pool: asyncpg.Pool) -> None:
    v = await swap(gateway)
    for call_id, caller in (("CApurge1", CALLER), ("CApurge2", OTHER)):
        status, _ = await post_call(gateway, call_id, v["number"], caller=caller)
        assert status == 200
    assert await wait_for(db_url, "SELECT count(*) FROM call_candidates", 2) == 2
    done = await purge_caller(pool, CALLER)
    assert (done.calls, done.candidates, done.matches) == (1, 1, 1)
    c = gateway.client
    assert (await c.get("/v1/calls/CApurge1", headers=gateway.auth)).status == 404
    listed = await (await c.get("/v1/calls", headers=gateway.auth)).json()
    assert [row["id"] for row in listed["calls"]] == ["CApurge2"]
    # The carrier retries the webhook: the engine answers from memory and records nothing,
    # so the purged call does not come back (the engine forgets it at the next restart).
    status, twiml = await post_call(gateway, "CApurge1", v["number"], caller=CALLER)
    assert status == 200 and "<Dial" in twiml
    # Nor can it be re-attached: its match history would refer to no call and block the
    # writer, so the API says it is gone.
    other = await swap(gateway, url="https://acme.test/?gclid=other")
    resp = await c.post("/v1/calls/CApurge1/match", json={"session": other["session"]},
                        headers=gateway.auth)
    assert resp.status == 404
    await asyncio.sleep(0.3)  # six write-behind periods
    assert await wait_for(db_url, "SELECT count(*) FROM calls WHERE id = 'CApurge1'", 0) == 0
    writer = gateway.app[STATE].writer
    assert writer is not None and writer.healthy and writer.depth == 0


async def test_a_call_made_a_moment_ago_can_be_overridden_at_once(gateway: Gateway) -> None:
    """The purge guard on overrides does not refuse a call the writer has not stored yet."""
    first = await swap(gateway, url="https://acme.test/?gclid=first")
    second = await swap(gateway, url="https://acme.test/?gclid=second")
    status, _ = await post_call(gateway, "CAfresh", first["number"])
    assert status == 200
    resp = await gateway.client.post("/v1/calls/CAfresh/match",
                                     json={"session": second["session"]}, headers=gateway.auth)
    assert resp.status == 200, await resp.text()
