"""The write-behind writer: engine records batched into Postgres off the hot paths.

Handlers hand records to `Writer.add()` (swap path: memory only) or `Writer.add_durable()`
(call path: also appended to the fsync'd spool before the carrier is answered). A background
task flushes every `flush_interval_s` in one transaction per batch. When the database is down
the batch is kept and retried with capped exponential backoff; past `MAX_PENDING` records the
queue is spilled to the spool so memory stays bounded. Nothing is dropped: on start the spool is
replayed, and every insert is idempotent so replays never duplicate.

A batch Postgres refuses for its data (a NUL, invalid UTF-8, a value out of range: retrying
cannot help) is split in halves until the records at fault stand alone; the others are
written, and those are moved to the spool's quarantine file with an error log line and a
counter (`dni_writer_quarantined_records_total`), so one bad record never holds back the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg

from gateway import log
from gateway.engine.records import (
    CallRecord,
    MatchOverride,
    SessionEvent,
    SessionStarted,
)
from gateway.store import sql_writer
from gateway.store.records import CallUpdate, for_storage
from gateway.store.spool import TYPE_NAMES, Spool, SpoolError

MAX_PENDING = 200_000  # ~100 MB of records at most in memory before spilling to disk
MAX_BATCH = 20_000  # one transaction stays well under a second even on a slow disk
BACKOFF_MAX_S = 5.0  # retry a down database at least this often
FLUSH_TIMEOUT_S = 30.0  # a batch taking longer is treated as failed and retried
MAX_REASON = 300  # characters of Postgres' complaint kept with a quarantined record
# Postgres refusing the data itself (SQLSTATE class 22: NUL, bad encoding, out of range, also
# raised by asyncpg for text it cannot encode; class 23: a constraint): the same batch would
# fail forever, so it is bisected and the records at fault quarantined.
DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
# What a flush waits out and retries with backoff: the database down or refusing connections,
# a timeout, a disk refusing the quarantine file.
RETRIED_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError,
                  ConnectionError, SpoolError)

_log = log.get("gateway.store.writer")


class Writer:
    def __init__(self, pool: asyncpg.Pool | None, spool: Spool, flush_interval_s: float,
                 fsync_before_answer: bool = False) -> None:
        self.pool = pool
        self.fsync_before_answer = fsync_before_answer
        self.spool = spool
        self.flush_interval_s = flush_interval_s
        self.pending: list[Any] = []
        self._memory_segments: set[Path] = set()
        self._wake = asyncio.Event()
        self.failures = 0
        self.last_flush_s = 0.0
        self.flushed_total = 0
        self.spool_errors = 0
        self.quarantined = 0  # records Postgres refused, moved to the quarantine file
        self.healthy = True
        self._write_seq = 0  # durable writes handed to the spool so far
        self._synced_seq = 0  # the last of them an fsync has covered
        self._sync: tuple[asyncio.Future[None], int] | None = None  # fsync running, covers
        self._bg_sync: asyncio.Task[None] | None = None
        # Scale-out: the worker id stamped on the sessions and events it writes (None for
        # records replayed from a previous run's spool, which every process, this one too,
        # must still read).
        self.origin: str | None = None
        self._flushing = asyncio.Lock()  # one flush at a time: the loop, drain, lease handover

    @property
    def depth(self) -> int:
        return len(self.pending)

    def add(self, records: Iterable[Any]) -> None:
        self.pending.extend(records)
        if len(self.pending) >= MAX_PENDING:
            self._spill()

    def add_durable_nowait(self, records: list[Any]) -> bool:
        """`add_durable` for callers that cannot wait (the SIP datagram path): written to the
        spool now (survives a process kill), fsync'd in the background at once."""
        written = self._write_spool(records)
        if written is None:
            return False
        self._sync_in_background(written)
        return True

    def _write_spool(self, records: list[Any]) -> list[Any] | None:
        """Queue and write to the spool; the stored records, or None if the disk refused."""
        records = [for_storage(r) for r in records]
        self.pending.extend(records)
        try:
            self.spool.write(records)
        except SpoolError as exc:
            self._spool_failed(exc, records)
            return None
        if self.spool._current is not None:
            self._memory_segments.add(self.spool._current)
        self._write_seq += 1
        return records

    def _sync_in_background(self, records: list[Any]) -> None:
        """One background task keeps fsyncing while writes are ahead of the last fsync."""
        if self._bg_sync is None or self._bg_sync.done():
            self._bg_sync = asyncio.get_running_loop().create_task(self._background_sync())

    async def add_durable(self, records: list[Any]) -> bool:
        """Queue `records` and write them to the spool before returning; False if the disk
        refused (the records stay queued in memory and the caller carries on: fail open).

        Once written, the records are in the kernel: they survive the process being killed.
        An fsync (one for all concurrent callers: group commit, run in a thread so the event
        loop keeps answering) makes them survive a power loss too. By default it starts at
        once and the answer does not wait for it (a few ms of exposure to a machine crash);
        with `fsync_before_answer` the caller waits for it."""
        if not self.fsync_before_answer:
            return self.add_durable_nowait(records)
        records = self._write_spool(records)
        if records is None:
            return False
        try:
            await self._group_sync(self._write_seq)
        except SpoolError as exc:
            return self._spool_failed(exc, records)
        return True

    async def settle(self) -> None:
        """Wait for the background fsync still running (shutdown)."""
        if self._bg_sync is not None:
            await asyncio.gather(self._bg_sync, return_exceptions=True)

    async def _background_sync(self) -> None:
        while self._synced_seq < self._write_seq:
            try:
                await self._group_sync(self._write_seq)
            except SpoolError as exc:
                self._spool_failed(exc, [])
                return

    def _spool_failed(self, exc: SpoolError, records: list[Any]) -> bool:
        self.spool_errors += 1
        _log.error("spool_write_failed", error=str(exc), records=len(records))
        return False

    async def _group_sync(self, mine: int) -> None:
        """Return once an fsync that began after write number `mine` has completed. One fsync
        runs at a time, in a thread; every write made before it began rides on it."""
        while self._synced_seq < mine:
            if self._sync is None:
                covers = self._write_seq
                future = asyncio.get_running_loop().run_in_executor(None, self.spool.sync)
                self._sync = (future, covers)
            future, covers = self._sync
            try:
                await asyncio.shield(future)
            finally:
                # A finished future is awaited without yielding: settle it here, not in a
                # callback, or this loop could spin before the callback ever runs.
                if self._sync is not None and self._sync[0] is future:
                    self._sync = None
            self._synced_seq = max(self._synced_seq, covers)

    def _spill(self) -> None:
        try:
            path = self.spool.write_segment(self.pending)
        except SpoolError as exc:
            self.spool_errors += 1
            _log.error("spool_spill_failed", error=str(exc), pending=len(self.pending))
            return
        _log.warning("writer_spilled", records=len(self.pending), segment=path.name)
        self.pending = []
        self._memory_segments.clear()

    async def flush(self) -> int:
        """Write everything pending and every spool segment; return records written.
        Raises the database error when the batch could not be written (kept for retry).
        Concurrent callers take turns, so a caller returning knows that everything queued
        before its call is in Postgres."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        if self.pool is None:
            raise ConnectionError("no database pool")
        closed = self.spool.rotate()
        replay = [p for p in closed if p not in self._memory_segments]
        batch: list[Any] = []
        for path in replay:
            batch.extend(self.spool.read(path))
        taken = len(self.pending)
        batch.extend(self.pending[:taken])
        if not batch:
            self.spool.remove([p for p in closed if p in self._memory_segments])
            self._memory_segments.difference_update(closed)
            return 0
        started = time.perf_counter()
        refused: list[tuple[Any, str]] = []
        for i in range(0, len(batch), MAX_BATCH):
            await self._write_or_bisect(batch[i:i + MAX_BATCH], refused)
        if refused:  # on disk before the spool and the queue forget them
            self._quarantine(refused)
        del self.pending[:taken]
        self.spool.remove(closed)
        self._memory_segments.difference_update(closed)
        self.last_flush_s = time.perf_counter() - started
        written = len(batch) - len(refused)
        self.flushed_total += written
        return written

    async def _write_or_bisect(self, batch: list[Any], refused: list[tuple[Any, str]]) -> None:
        """Write `batch` in one transaction. When Postgres refuses it for its data, write each
        half in turn (order kept), down to single records: one refused alone joins `refused`
        with the reason. Any other error propagates and the whole flush is retried later."""
        try:
            await asyncio.wait_for(self._write(batch), FLUSH_TIMEOUT_S)
        except DATA_ERRORS as exc:
            if len(batch) == 1:
                refused.append((batch[0], _reason(exc)))
                return
        else:
            return
        half = len(batch) // 2
        await self._write_or_bisect(batch[:half], refused)
        await self._write_or_bisect(batch[half:], refused)

    def _quarantine(self, refused: list[tuple[Any, str]]) -> None:
        """Keep refused records in the quarantine file (a SpoolError fails the flush: it is
        retried, nothing forgotten) and say so loudly."""
        path = self.spool.quarantine(refused)
        self.quarantined += len(refused)
        for record, reason in refused:
            _log.error("writer_record_quarantined", kind=TYPE_NAMES[type(record)],
                       id=_printable(_record_id(record)), error=reason, file=str(path))

    async def _write(self, batch: list[Any]) -> None:
        groups: dict[type, list[Any]] = defaultdict(list)
        for r in batch:
            groups[type(r)].append(r)
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            await sql_writer.sessions(conn, groups[SessionStarted], self.origin)
            await sql_writer.events(conn, groups[SessionEvent], self.origin)
            await sql_writer.calls(conn, groups[CallRecord])
            await sql_writer.overrides(conn, groups[MatchOverride])
            await sql_writer.call_updates(conn, groups[CallUpdate])

    async def run(self) -> None:
        """Flush forever; back off while the database is unavailable."""
        delay = self.flush_interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            try:
                await self.flush()
            except RETRIED_ERRORS as exc:
                self.failures += 1
                self.healthy = False
                delay = min(BACKOFF_MAX_S, max(self.flush_interval_s, delay * 2))
                _log.warning("writer_flush_failed", error=type(exc).__name__,
                             pending=len(self.pending), retry_in_s=round(delay, 2))
                continue
            if not self.healthy:
                _log.info("writer_recovered", pending=len(self.pending))
            self.healthy = True
            delay = self.flush_interval_s

    def kick(self) -> None:
        self._wake.set()

    async def drain(self, timeout_s: float) -> bool:
        """Flush until empty or `timeout_s` passes (shutdown); True when all written."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                await self.flush()
            except RETRIED_ERRORS:
                await asyncio.sleep(0.2)
                continue
            if not self.pending and not self.spool.segments():
                return True
        return False

    def spill_remaining(self) -> None:
        """At shutdown without a database: keep what is left on disk for the next start."""
        if self.pending:
            self._spill()
        self.spool.close()


def _record_id(record: Any) -> str:
    """The call or session a record is about."""
    return str(getattr(record, "call_id", None) or getattr(record, "session", ""))


def _printable(text: str) -> str:
    """Text any log sink can write: lone surrogates and NUL escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _reason(exc: Exception) -> str:
    """What Postgres said, kept with a quarantined record: error class, SQLSTATE, message."""
    sqlstate = getattr(exc, "sqlstate", None) or "-"
    return _printable(f"{type(exc).__name__} [{sqlstate}]: {exc}"[:MAX_REASON])
