"""The writer against records Postgres refuses: the batch is bisected, the good records are
written, the refused ones quarantined on disk; a lost database is still retried, never
quarantined."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from gateway.engine.records import SessionEvent, SessionStarted
from gateway.store import writer as writer_module
from gateway.store.db import create_pool
from gateway.store.records import CallUpdate
from gateway.store.spool import QUARANTINE_DIR, Spool, decode
from gateway.store.writer import Writer


def session(sid: str, url: str = "https://acme.test/",
            attribution: tuple[tuple[str, str], ...] = ()) -> SessionStarted:
    return SessionStarted(sid, "v" + sid, "acme", "Google Ads", "+14155550101", 1_800_000_000.0,
                          url, None, "Mozilla/5.0", False, False, False, attribution)


def quarantined(spool_dir: Path) -> list[tuple[Any, str]]:
    lines = [line for path in sorted((spool_dir / QUARANTINE_DIR).glob("*.jsonl"))
             for line in path.read_text().splitlines()]
    return [(decode(line), json.loads(line)["error"]) for line in lines]


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url)
    yield pool
    await pool.close()


def new_writer(pool: Any, tmp_path: Path) -> Writer:
    spool = Spool(tmp_path / "spool")
    spool.open()
    return Writer(pool, spool, 0.05)


async def test_refused_records_are_quarantined_and_the_rest_written(
        pool: asyncpg.Pool, tmp_path: Path) -> None:
    writer = new_writer(pool, tmp_path)
    good = [session(f"s{i}") for i in range(10)]
    nul = session("s_nul", url="https://acme.test/\x00")
    surrogate = session("s_sur", attribution=(("utm_source", "\udcff"),))
    bad_update = CallUpdate("CA\udcfe", 1.0, status="completed")
    records = [*good[:3], nul, *good[3:7], surrogate, bad_update, *good[7:]]
    writer.add(records[:5])
    assert writer.add_durable_nowait(records[5:])  # via the spool too: its segment goes
    with structlog.testing.capture_logs() as logs:
        written = await writer.flush()
    assert written == len(good)
    assert writer.depth == 0 and writer.quarantined == 3 and not writer.spool.segments()
    ids = {r["id"] for r in await pool.fetch("SELECT id FROM sessions")}
    assert ids == {s.session for s in good}
    kept = quarantined(tmp_path / "spool")
    assert [r for r, _ in kept] == [nul, surrogate, bad_update]  # intact, in batch order
    assert all("Error [22" in reason for _, reason in kept)  # SQLSTATE class 22: data
    events = [e for e in logs if e["event"] == "writer_record_quarantined"]
    assert [(e["kind"], e["id"], e["log_level"]) for e in events] == [
        ("session", "s_nul", "error"), ("session", "s_sur", "error"),
        ("call_update", "CA\\udcfe", "error")]
    writer.add([session("s_later")])  # the writer carries on as usual
    assert await writer.flush() == 1


class FakeWriter(Writer):
    """`_write` refuses any batch holding a poisoned record, and records what it was given."""

    def __init__(self, tmp_path: Path, poisoned: set[str],
                 error: Exception | None = None) -> None:
        spool = Spool(tmp_path / "spool")
        spool.open()
        super().__init__(object(), spool, 0.05)  # type: ignore[arg-type]
        self.poisoned = poisoned
        self.error = error
        self.written: list[str] = []
        self.attempts = 0

    async def _write(self, batch: list[Any]) -> None:
        self.attempts += 1
        if self.error is not None:
            raise self.error
        if any(r.session in self.poisoned for r in batch):
            raise asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence")
        self.written.extend(r.session for r in batch)


async def test_bisection_writes_everything_but_the_poisoned_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "MAX_BATCH", 64)
    records = [SessionEvent(f"s{i}", "pageview", float(i)) for i in range(300)]
    writer = FakeWriter(tmp_path, {"s0", "s77", "s78", "s299"})
    writer.add(records)
    assert await writer.flush() == 296
    assert writer.written == [r.session for r in records
                              if r.session not in writer.poisoned]
    assert [r.session for r, _ in quarantined(tmp_path / "spool")] == [
        "s0", "s77", "s78", "s299"]
    assert writer.attempts < 100  # a few transactions per poisoned record, not one per record


@pytest.mark.parametrize("error", [
    ConnectionResetError("connection lost"), TimeoutError(),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.UndefinedTableError('relation "sessions" does not exist'),  # not the data's fault
])
async def test_errors_not_about_the_data_are_retried_not_quarantined(
        tmp_path: Path, error: Exception) -> None:
    writer = FakeWriter(tmp_path, set(), error)
    writer.add([SessionEvent("s1", "pageview", 1.0), SessionEvent("s2", "pageview", 2.0)])
    with pytest.raises(type(error)):
        await writer.flush()
    assert writer.attempts == 1 and writer.depth == 2 and writer.quarantined == 0
    assert not (tmp_path / "spool" / QUARANTINE_DIR).exists()


async def test_a_quarantine_the_disk_refuses_keeps_the_records_for_a_retry(
        tmp_path: Path) -> None:
    writer = FakeWriter(tmp_path, {"s1"})
    (tmp_path / "spool" / QUARANTINE_DIR).write_text("not a directory")
    writer.add([SessionEvent("s1", "pageview", 1.0), SessionEvent("s2", "pageview", 2.0)])
    with pytest.raises(writer_module.SpoolError):
        await writer.flush()
    assert writer.depth == 2 and writer.quarantined == 0  # nothing forgotten
    assert isinstance(writer_module.SpoolError("x"), writer_module.RETRIED_ERRORS)
