"""The write-behind writer: engine records batched into Postgres off the hot paths.

Handlers hand records to `Writer.add()` (swap path: memory only) or `Writer.add_durable()`
(call path: also appended to the fsync'd spool before the carrier is answered). A background
task flushes every `flush_interval_s` in one transaction per batch. When the database is down
the batch is kept and retried with capped exponential backoff; past `MAX_PENDING` records the
queue is spilled to the spool so memory stays bounded. Nothing is dropped: on start the spool is
replayed, and every insert is idempotent so replays never duplicate.
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
from gateway.store.records import CallUpdate
from gateway.store.spool import Spool, SpoolError

MAX_PENDING = 200_000  # ~100 MB of records at most in memory before spilling to disk
MAX_BATCH = 20_000  # one transaction stays well under a second even on a slow disk
BACKOFF_MAX_S = 5.0  # retry a down database at least this often
FLUSH_TIMEOUT_S = 30.0  # a batch taking longer is treated as failed and retried

_log = log.get("gateway.store.writer")


class Writer:
    def __init__(self, pool: asyncpg.Pool | None, spool: Spool, flush_interval_s: float) -> None:
        self.pool = pool
        self.spool = spool
        self.flush_interval_s = flush_interval_s
        self.pending: list[Any] = []
        self._memory_segments: set[Path] = set()
        self._wake = asyncio.Event()
        self.failures = 0
        self.last_flush_s = 0.0
        self.flushed_total = 0
        self.spool_errors = 0
        self.healthy = True

    @property
    def depth(self) -> int:
        return len(self.pending)

    def add(self, records: Iterable[Any]) -> None:
        self.pending.extend(records)
        if len(self.pending) >= MAX_PENDING:
            self._spill()

    def add_durable(self, records: list[Any]) -> bool:
        """Queue `records` and fsync them to the spool first; False if the spool refused
        (the records are still queued in memory and the caller carries on: fail open)."""
        self.pending.extend(records)
        try:
            self.spool.append(records)
        except SpoolError as exc:
            self.spool_errors += 1
            _log.error("spool_write_failed", error=str(exc), records=len(records))
            return False
        if self.spool._current is not None:
            self._memory_segments.add(self.spool._current)
        return True

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
        Raises the database error when the batch could not be written (kept for retry)."""
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
        for i in range(0, len(batch), MAX_BATCH):
            await asyncio.wait_for(self._write(batch[i:i + MAX_BATCH]), FLUSH_TIMEOUT_S)
        del self.pending[:taken]
        self.spool.remove(closed)
        self._memory_segments.difference_update(closed)
        self.last_flush_s = time.perf_counter() - started
        self.flushed_total += len(batch)
        return len(batch)

    async def _write(self, batch: list[Any]) -> None:
        groups: dict[type, list[Any]] = defaultdict(list)
        for r in batch:
            groups[type(r)].append(r)
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            await sql_writer.sessions(conn, groups[SessionStarted])
            await sql_writer.events(conn, groups[SessionEvent])
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
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError,
                    ConnectionError) as exc:
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
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError,
                    ConnectionError):
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
