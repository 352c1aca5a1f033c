"""Scale-out: several gateway processes on one PostgreSQL, each pool number owned by one of them.

Two background tasks per process, both plain SQL on the shared database (no home-made
consensus):

- `Follower` reads what the other processes have written (sessions started, session events,
  calls) and hands it to `Engine.absorb`, every `DNI_CLUSTER_POLL` (0.2 s). It reads by inserting
  transaction: each read runs in a REPEATABLE READ transaction and asks for the rows whose
  transaction was not visible in the snapshot of the previous read but is now, so every row
  committed by anyone is read exactly once, whatever order the writers' transactions commit in.
  Sessions and events carry the worker that recorded them, so a process skips its own. A call
  arriving one second after a page event on another process is attributed as one process
  would: the event is in Postgres one flush later (0.2 s) and here one poll after that. It also
  reloads the configuration when another process changed it (a counter bumped by triggers).
- `LeaseKeeper` heartbeats the process into `gateway_workers` and holds a lease row per pool
  number it owns (`number_leases`: owner, expiry in database time), renewed every second. The
  numbers of every pool are split fairly over the live processes (round robin from a per-pool
  offset, over the sorted worker ids: every process computes the same split) and rebalanced when
  one joins or leaves: a process gives up a number (stops handing it out, flushes its writer,
  then releases the row) before another can take it, and takes one only when its row is free,
  expired or already its own, in one statement that cannot give a number to two. A process
  that cannot renew stops handing out its numbers before its leases expire (a local deadline,
  TTL minus a margin, measured from before the renewal was sent), so a dead or cut-off process's
  numbers go to the others one TTL later and never to two at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg

from gateway import log
from gateway.engine import Engine
from gateway.engine.records import CallState, SessionState
from gateway.store.config_repo import load_config

LEASE_MARGIN_S = 2.0  # stop handing out numbers this long before their lease expires
TICK_MAX_S = 1.0  # renew at least this often (and rebalance within one tick of a change)
QUERY_TIMEOUT_S = 2.0

_log = log.get("gateway.store.cluster")

# Each reads the rows committed after `$1` (the previous read's snapshot) and visible now.
SNAPSHOT_SQL = "SELECT pg_current_snapshot()::text"

# A session as inserted: its events are read (and applied) on their own.
FOLLOW_SESSIONS_SQL = """
SELECT id, visitor, site, source, number, extract(epoch FROM started_at)::float8,
       extract(epoch FROM started_at)::float8, mobile, shared, 1, NULL::float8, NULL::float8
FROM sessions
WHERE tx >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(tx, $1::text::pg_snapshot) AND origin IS DISTINCT FROM $2
ORDER BY started_at, id
"""

FOLLOW_EVENTS_SQL = """
SELECT session, kind, extract(epoch FROM at)::float8 FROM session_events
WHERE tx >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(tx, $1::text::pg_snapshot) AND origin IS DISTINCT FROM $2
ORDER BY at, session, kind
"""

FOLLOW_CALLS_SQL = """
SELECT id, site, to_number, caller, extract(epoch FROM at)::float8, source, session, visitor,
       likelihood
FROM calls
WHERE tx >= pg_snapshot_xmin($1::text::pg_snapshot)
  AND NOT pg_visible_in_snapshot(tx, $1::text::pg_snapshot)
ORDER BY at, id
"""

EPOCH_SQL = "SELECT epoch FROM config_epoch"

HEARTBEAT_SQL = """
WITH me AS (
    INSERT INTO gateway_workers (id, host, pid, expires_at)
    VALUES ($1, $2, $3, now() + make_interval(secs => $4))
    ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at
)
SELECT id FROM gateway_workers WHERE expires_at > now() AND id <> $1
"""

FORGET_DEAD_SQL = """
DELETE FROM gateway_workers WHERE expires_at < now() - interval '1 hour'
"""

RELEASE_SQL = "UPDATE number_leases SET owner = NULL, expires_at = now() " \
              "WHERE owner = $1 AND number = ANY($2::text[])"

# Take the numbers that are free, expired or ours (renewing ours); RETURNING lists exactly the
# rows this statement wrote: the numbers this process owns now.
CLAIM_SQL = """
INSERT INTO number_leases AS l (number, owner, expires_at)
SELECT n, $1, now() + make_interval(secs => $3) FROM unnest($2::text[]) AS n
ON CONFLICT (number) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
    acquired_at = CASE WHEN l.owner IS DISTINCT FROM excluded.owner THEN now()
                       ELSE l.acquired_at END
WHERE l.owner IS NULL OR l.owner = excluded.owner OR l.expires_at < now()
RETURNING number
"""

LEAVE_SQL = ("UPDATE number_leases SET owner = NULL, expires_at = now() WHERE owner = $1",
             "DELETE FROM gateway_workers WHERE id = $1")


def worker_id(index: int | None = None) -> str:
    """Unique per process run: host, worker slot, pid and a random tail."""
    slot = "" if index is None else f"w{index}-"
    return f"{socket.gethostname()}-{slot}{os.getpid()}-{secrets.token_hex(2)}"


def assign(pools: Iterable[tuple[str, str, Sequence[str]]], members: Sequence[str],
           me: str) -> frozenset[str]:
    """The pool numbers `me` should own among `members` (live worker ids): each pool's numbers
    dealt round robin over the sorted ids from a per-pool offset, so small pools do not all
    land on the first worker. Every process computes the same split from the same members."""
    ids = sorted(set(members) | {me})
    n, k = len(ids), ids.index(me)
    out: set[str] = set()
    for site, source, numbers in pools:
        offset = zlib.crc32(f"{site}\x00{source}".encode()) % n
        out.update(num for i, num in enumerate(numbers) if (i + offset) % n == k)
    return frozenset(out)


class Follower:
    """Applies what the other processes write to this process's engine (see module doc)."""

    def __init__(self, pool: asyncpg.Pool, me: str, engine: Callable[[], Engine | None],
                 reconfigure: Callable[[dict[str, Any], int], None], *,
                 snapshot: str, epoch: int) -> None:
        self.pool = pool
        self.me = me
        self._engine = engine
        self._reconfigure = reconfigure
        self.snapshot = snapshot
        self.epoch = epoch
        self.lag_s = 0.0  # age of the snapshot last applied, when it was applied
        self.failures = 0
        self.absorbed = [0, 0, 0]  # sessions, events, calls
        self.last_ok = time.monotonic()
        self._lock = asyncio.Lock()

    async def catch_up(self) -> None:
        """Read and apply everything committed since the last read (one at a time)."""
        async with self._lock:
            started = time.monotonic()
            async with asyncio.timeout(QUERY_TIMEOUT_S), self.pool.acquire() as conn, \
                    conn.transaction(isolation="repeatable_read", readonly=True):
                snap = await conn.fetchval(SNAPSHOT_SQL)
                sessions = await conn.fetch(FOLLOW_SESSIONS_SQL, self.snapshot, self.me)
                events = await conn.fetch(FOLLOW_EVENTS_SQL, self.snapshot, self.me)
                calls = await conn.fetch(FOLLOW_CALLS_SQL, self.snapshot)
                epoch = await conn.fetchval(EPOCH_SQL)
                config = await load_config(conn) if epoch != self.epoch else None
            engine = self._engine()
            if engine is None:
                return
            if config is not None:
                self._reconfigure(config, epoch)
                self.epoch = epoch
            counts = engine.absorb((SessionState(*r) for r in sessions),
                                   (tuple(r) for r in events),
                                   (CallState(*r) for r in calls))
            for i, c in enumerate(counts):
                self.absorbed[i] += c
            self.snapshot = snap
            self.last_ok = time.monotonic()
            self.lag_s = self.last_ok - started

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.catch_up()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    TimeoutError) as exc:
                self.failures += 1
                _log.warning("follow_failed", error=type(exc).__name__)
                await asyncio.sleep(min(5.0, interval_s * 2 ** min(self.failures, 5)))


class LeaseKeeper:
    """Heartbeat, fair split and number leases of this process (see module doc)."""

    def __init__(self, pool: asyncpg.Pool, me: str, ttl_s: float, *,
                 engine: Callable[[], Engine | None], flush: Callable[[], Any],
                 follower: Follower) -> None:
        self.pool = pool
        self.me = me
        self.ttl_s = ttl_s
        self._engine = engine
        self._flush = flush
        self.follower = follower
        self.owned: frozenset[str] = frozenset()
        self.desired: frozenset[str] = frozenset()
        self.members: list[str] = [me]
        self.valid_until = 0.0  # loop time after which the leases may be another's
        self.renewed = False  # a renewal has succeeded since start (or the last lapse)
        self.failures = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def interval_s(self) -> float:
        return min(TICK_MAX_S, self.ttl_s / 5)

    @property
    def margin_s(self) -> float:
        return min(LEASE_MARGIN_S, self.ttl_s / 4)

    def valid_for(self) -> float:
        return max(0.0, self.valid_until - asyncio.get_running_loop().time())

    @property
    def ready(self) -> bool:
        return self.renewed and self.valid_for() > 0

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        async with asyncio.timeout(QUERY_TIMEOUT_S):
            async with self.pool.acquire() as conn:
                others = [r[0] for r in await conn.fetch(
                    HEARTBEAT_SQL, self.me, socket.gethostname(), os.getpid(), self.ttl_s)]
            engine = self._engine()
            if engine is None:
                return
            self.members = sorted({self.me, *others})
            self.desired = assign(engine.pool_numbers(), self.members, self.me)
            drop = self.owned - self.desired
            if drop:
                self._use(self.owned & self.desired)
                await self._flush()  # their last sessions are in Postgres before the release
                async with self.pool.acquire() as conn:
                    await conn.execute(RELEASE_SQL, self.me, sorted(drop))
            async with self.pool.acquire() as conn:
                got = frozenset(r[0] for r in await conn.fetch(
                    CLAIM_SQL, self.me, sorted(self.desired), self.ttl_s))
            if got - self.owned:
                # What their previous owner recorded is in Postgres (it flushed before it
                # released, or its lease ran out): read it before handing them out.
                await self.follower.catch_up()
        self.valid_until = sent + self.ttl_s - self.margin_s
        self._use(got & self.desired)
        self.renewed = True
        self._arm()

    def _use(self, owned: frozenset[str]) -> None:
        if owned != self.owned:
            gained, lost = len(owned - self.owned), len(self.owned - owned)
            _log.info("leases_changed", owned=len(owned), gained=gained, lost=lost,
                      workers=len(self.members))
        self.owned = owned
        engine = self._engine()
        if engine is not None:
            engine.own_numbers(owned)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(self.valid_until, self._lapse)

    def _lapse(self) -> None:
        """Not renewed in time: the leases may be someone else's from now on."""
        self._timer = None
        if self.owned:
            _log.warning("leases_lapsed", owned=len(self.owned))
        self.renewed = False
        self._use(frozenset())

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                self.failures = 0
                # Not yet holding the whole share (another process has not let go yet): soon.
                delay = self.interval_s if self.owned == self.desired else self.interval_s / 4
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError,
                    ConnectionError) as exc:
                self.failures += 1
                _log.warning("lease_renew_failed", error=type(exc).__name__,
                             valid_for_s=round(self.valid_for(), 2))
                delay = self.interval_s
            await asyncio.sleep(delay)

    async def leave(self) -> None:
        """Shutdown: stop handing out numbers, flush, release every lease, leave the members."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._use(frozenset())
        self.renewed = False
        with contextlib.suppress(Exception):
            async with asyncio.timeout(QUERY_TIMEOUT_S):
                await self._flush()
        try:
            async with asyncio.timeout(QUERY_TIMEOUT_S), self.pool.acquire() as conn:
                for sql in LEAVE_SQL:
                    await conn.execute(sql, self.me)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            _log.warning("lease_release_failed", error=type(exc).__name__)

    def snapshot(self) -> dict[str, Any]:
        return {"worker": self.me, "workers": len(self.members), "owned": len(self.owned),
                "share": len(self.desired), "valid_for_s": round(self.valid_for(), 2),
                "ready": self.ready}
