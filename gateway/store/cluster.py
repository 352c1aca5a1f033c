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
import json
import os
import secrets
import socket
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
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

NOTIFY_SQL = "SELECT pg_notify('dni_leases', $1)"

# Lend a number: the row moves to the borrower, and the borrower hears of it, only if the row
# is still the lender's.
LEND_SQL = """
WITH moved AS (
    UPDATE number_leases SET owner = $2, expires_at = now() + make_interval(secs => $3),
        acquired_at = now()
    WHERE number = $1 AND owner = $4
    RETURNING number
)
SELECT count(*) FROM (SELECT pg_notify('dni_leases', $5) FROM moved) AS told
"""

FULL_BACKOFF_S = 1.0  # after nobody could lend one, the source shares locally this long

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
        self.read_at = 0.0  # monotonic time the last applied read began
        self._lock = asyncio.Lock()

    async def catch_up(self, *, after: float | None = None) -> None:
        """Read and apply everything committed since the last read (one at a time). With
        `after` (a monotonic time), a read that began at or after it is enough: callers
        waiting together share one read."""
        async with self._lock:
            if after is not None and self.read_at >= after:
                return
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
            self.read_at = started
            self.last_ok = time.monotonic()
            self.lag_s = self.last_ok - started

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.catch_up()
                self.failures = 0
            except Exception as exc:  # a database error, or a bug: keep following either way
                self.failures += 1
                _log.warning("follow_failed", error=type(exc).__name__, detail=str(exc)[:200])
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
        self.loans: dict[str, float] = {}  # numbers lent to this process -> loop time received
        self.lent: dict[str, float] = {}  # numbers this process lent -> loop time it lent them
        self.after_tick: Callable[[], Awaitable[None]] | None = None

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
            home = assign(engine.pool_numbers(), self.members, self.me)
            # Borrowed numbers are kept while a session holds them, then given back.
            kept = engine.reserved(self.loans, time.time())
            returning = set(self.loans) - kept - home
            for n in set(self.loans) - kept:
                del self.loans[n]
            self.desired = home | kept
            drop = self.owned - self.desired
            if drop:
                self._use(self.owned & self.desired)
                await self._flush()  # their last sessions are in Postgres before the release
                async with self.pool.acquire() as conn:
                    await conn.execute(RELEASE_SQL, self.me, sorted(drop))
                    if returning & drop:  # the lender may take them back at once
                        await conn.execute(NOTIFY_SQL, json.dumps(
                            {"op": "returned", "numbers": sorted(returning & drop)}))
            async with self.pool.acquire() as conn:
                got = frozenset(r[0] for r in await conn.fetch(
                    CLAIM_SQL, self.me, sorted(self.desired), self.ttl_s))
            if got - self.owned:
                # What their previous owner recorded is in Postgres (it flushed before it
                # released, or its lease ran out): read it before handing them out.
                await self.follower.catch_up()
        self.valid_until = sent + self.ttl_s - self.margin_s
        # A loan that arrived after the claim was sent is ours though the claim did not see
        # it; a number lent within a lease time is not, though the claim may have renewed it
        # just before the lend took it.
        late = {n for n, t in self.loans.items() if t >= sent}
        now = loop.time()
        for n in [n for n, t in self.lent.items() if t + self.ttl_s <= now]:
            del self.lent[n]
        self._use((got & self.desired | late) - self.lent.keys())
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
            except Exception as exc:  # a database error, or a bug: the lapse timer guards
                self.failures += 1
                _log.warning("lease_renew_failed", error=type(exc).__name__,
                             detail=str(exc)[:200], valid_for_s=round(self.valid_for(), 2))
                delay = self.interval_s
            if self.after_tick is not None:
                await self.after_tick()
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

    def accept_loan(self, number: str) -> None:
        if not self.ready:
            return  # no lease of our own is valid: we cannot hand it out safely either
        self.loans[number] = asyncio.get_running_loop().time()
        self.desired = self.desired | {number}
        self._use(self.owned | {number})

    def lent_out(self, number: str) -> None:
        self.lent[number] = asyncio.get_running_loop().time()
        self.owned = self.owned - {number}  # the engine has let it go already

    def returned(self, number: str) -> None:
        self.lent.pop(number, None)

    def snapshot(self) -> dict[str, Any]:
        return {"worker": self.me, "workers": len(self.members), "owned": len(self.owned),
                "share": len(self.desired), "borrowed": len(self.loans),
                "lent": len(self.lent), "valid_for_s": round(self.valid_for(), 2),
                "ready": self.ready}


class Lending:
    """Numbers lent between processes when one has no free number of a pool and another has.

    Without it a process whose share of a pool is all reserved would share one of its numbers
    while another process still has free ones. So before such a visit the swap handler asks
    (`borrow`): a NOTIFY on channel `dni_leases`; every other process answers at once, and one
    with a free number of that pool gives up its longest-free one (`Engine.lend`) and moves the
    lease row to the asker in the same statement that notifies it. The asker waits at most
    `wait_s` (DNI_LEND_WAIT); when nobody lends, the pool is full everywhere and it shares
    locally, and does not ask again for that pool for FULL_BACKOFF_S. A process that owns no
    number of a full pool (it lent them all) asks again for one to share: a process holding two
    or more gives its idle-longest. A borrowed number is renewed by the borrower while a
    session holds it, then released, and its lender takes it back.
    """

    def __init__(self, pool: asyncpg.Pool, url: str, keeper: LeaseKeeper,
                 engine: Callable[[], Engine | None], *, wait_s: float) -> None:
        self.pool = pool
        self.wait_s = wait_s
        self.url = url  # LISTEN needs a connection of its own, outside the pool
        self.keeper = keeper
        self.me = keeper.me
        self._engine = engine
        self._conn: Any = None
        self._pending: dict[str, list[Any]] = {}  # request id -> [future, answers awaited]
        self._full_until: dict[tuple[str, str, bool], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.borrowed = 0
        self.refused = 0
        self.lent = 0

    async def start(self) -> None:
        """LISTEN on a connection held for the purpose."""
        conn = await asyncpg.connect(self.url, timeout=QUERY_TIMEOUT_S)
        await conn.add_listener("dni_leases", self._heard)
        self._conn = conn

    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def ensure(self) -> None:
        """Listen again after the connection was lost (the database restarted)."""
        if self.listening():
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()
        try:
            await self.start()
        except Exception as exc:
            _log.warning("lend_listen_failed", error=type(exc).__name__)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(QUERY_TIMEOUT_S):
                    await conn.close()
            conn.terminate()

    async def borrow(self, site: str, source: str) -> bool:
        """Ask the other processes for a free number of the pool; True once one is ours. When
        none is free anywhere and this process owns none of the pool, ask for one to share.
        Never raises: the visit goes on with what this process has."""
        try:
            if await self._ask(site, source, free=True):
                return True
            engine = self._engine()
            if engine is None or engine.owns_any(site=site, source=source):
                return False
            return await self._ask(site, source, free=False)
        except Exception as exc:  # the swap must be answered whatever happens here
            _log.warning("borrow_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return False

    async def _ask(self, site: str, source: str, *, free: bool) -> bool:
        loop = asyncio.get_running_loop()
        key = (site, source, free)
        others = len(self.keeper.members) - 1
        if (others <= 0 or not self.listening() or not self.keeper.ready
                or self._full_until.get(key, 0.0) > loop.time()):
            return False
        request = secrets.token_hex(6)
        answer: asyncio.Future[str | None] = loop.create_future()
        self._pending[request] = [answer, others]
        number = None
        try:
            await self.pool.execute(NOTIFY_SQL, json.dumps(
                {"op": "ask", "from": self.me, "id": request, "site": site, "source": source,
                 "free": free}))
            number = await asyncio.wait_for(answer, self.wait_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            number = None
        finally:
            self._pending.pop(request, None)
        if number is None:
            self.refused += 1
            self._full_until[key] = loop.time() + FULL_BACKOFF_S
            return False
        self.borrowed += 1
        return True

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        op = msg.get("op")
        if op == "ask" and msg.get("from") != self.me:
            task = asyncio.get_running_loop().create_task(self._lend(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif op in ("lent", "none") and msg.get("to") == self.me:
            self._answered(msg)
        elif op == "returned":
            for n in msg.get("numbers") or ():
                self.keeper.returned(str(n))

    def _answered(self, msg: dict[str, Any]) -> None:
        entry = self._pending.get(str(msg.get("id")))
        if msg["op"] == "lent":
            number = str(msg.get("number"))
            self.keeper.accept_loan(number)  # even when the asker gave up: given back if unused
            if entry is not None and not entry[0].done():
                entry[0].set_result(number)
            return
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0 and not entry[0].done():
                entry[0].set_result(None)

    async def _lend(self, msg: dict[str, Any]) -> None:
        asker, request = str(msg.get("from")), str(msg.get("id"))
        engine = self._engine()
        number = None
        if engine is not None and self.keeper.ready:
            number = engine.lend(site=str(msg.get("site")), source=str(msg.get("source")),
                                 at=time.time(), free=msg.get("free") is not False)
        moved = None
        try:
            if number is not None:
                self.keeper.lent_out(number)
                moved = await self.pool.fetchval(
                    LEND_SQL, number, asker, self.keeper.ttl_s, self.me, json.dumps(
                        {"op": "lent", "to": asker, "id": request, "number": number,
                         "from": self.me}))
            if not moved:
                await self.pool.execute(NOTIFY_SQL, json.dumps(
                    {"op": "none", "to": asker, "id": request, "from": self.me}))
            else:
                self.lent += 1
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            _log.warning("lend_failed", error=type(exc).__name__)
