"""The app factory: `create_app(settings)` builds everything the gateway owns.

Owned resources are `cleanup_ctx` generators, started in order and stopped in reverse:
database (embedded server or DATABASE_URL, pool, migrations) -> configuration import ->
engine (rebuilt from Postgres) -> write-behind writer (spool replayed first). Background tasks
are tracked in a set and cancelled, after a bounded drain, at shutdown.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import log
from gateway.engine.records import CallRecord
from gateway.settings import Settings
from gateway.sip.server import SipConfig, SipServer
from gateway.store import cluster, migrate
from gateway.store.db import create_pool
from gateway.store.embedded import EmbeddedPostgres
from gateway.store.loader import build_engine, build_followed_engine
from gateway.store.records import CallUpdate
from gateway.store.spool import Spool
from gateway.store.writer import Writer
from gateway.web import admin, calls, ops, reports, static, swap, ui, voice
from gateway.web.cluster_metrics import ClusterState
from gateway.web.keys import METRICS, SETTINGS, STATE, State
from gateway.web.metrics import Metrics
from gateway.web.middleware import observe
from gateway.web.openapi import openapi_routes
from gateway.web.ratelimit import RateLimiter

CONFIG_PATH = web.AppKey("config_path", object)
WRITER_DRAIN_S = 5.0  # at shutdown the writer gets this long to empty its queue into Postgres

_log = log.get("gateway.app")


def track(state: State, coro: Any) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coro)
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)
    return task


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings, state = app[SETTINGS], app[STATE]
    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "pg")
        url = await asyncio.get_running_loop().run_in_executor(None, embedded.start)
        _log.info("embedded_postgres_started", data_dir=str(embedded.data_dir))
    state.db_url = url
    state.pool = await create_pool(url)
    async with state.pool.acquire() as conn:
        applied = await migrate.apply(conn)
    if applied:
        _log.info("migrations_applied", names=applied)
    yield
    await state.pool.close()
    state.pool = None
    if embedded is not None:
        await asyncio.get_running_loop().run_in_executor(None, embedded.stop)
        _log.info("embedded_postgres_stopped")


async def _config_file(app: web.Application) -> AsyncIterator[None]:
    path = app[CONFIG_PATH]
    if path is not None:
        from gateway.configfile import import_file

        await import_file(app[STATE].pool, Path(str(path)))
    yield


async def _engine(app: web.Application) -> AsyncIterator[None]:
    settings, state = app[SETTINGS], app[STATE]
    assert state.pool is not None
    if settings.cluster:
        engine, snapshot, epoch = await build_followed_engine(state.pool)
        state.use_engine(engine)
        state.worker_id = cluster.worker_id(settings.worker_index)
        log.bind_process(worker=state.worker_id)
        state.config_epoch = epoch
        state.follower = cluster.Follower(state.pool, state.worker_id, lambda: state.engine,
                                          _reload(state), snapshot=snapshot, epoch=epoch)
    else:
        state.use_engine(await build_engine(state.pool))
    yield


async def _writer(app: web.Application) -> AsyncIterator[None]:
    settings, state = app[SETTINGS], app[STATE]
    spool = Spool(settings.spool_dir)
    spool.open()
    state.writer = Writer(state.pool, spool, settings.flush_interval_s,
                          fsync_before_answer=settings.spool_fsync_before_answer)
    replayed = await state.writer.flush()  # what a previous run left on disk goes in first
    if replayed:
        _log.info("spool_replayed", records=replayed)
    state.writer.origin = state.worker_id
    task = track(state, state.writer.run())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await state.writer.settle()
    drained = await state.writer.drain(WRITER_DRAIN_S)
    if not drained:
        state.writer.spill_remaining()
        _log.warning("writer_not_drained", pending=state.writer.depth)
    state.writer.spool.close()


def _reload(state: State) -> Callable[[dict[str, Any], int], None]:
    """Scale-out: another process changed the configuration; apply it unless already done."""

    def reload(config: dict[str, Any], epoch: int) -> None:
        if epoch > state.config_epoch:
            state.config_epoch = epoch
            state.reconfigure(config)
            _log.info("config_reloaded", epoch=epoch)

    return reload


async def _cluster(app: web.Application) -> AsyncIterator[None]:
    """Scale-out: take this process's share of the numbers before serving, follow the others."""
    settings, state = app[SETTINGS], app[STATE]
    if not settings.cluster:
        yield
        return
    assert state.pool is not None and state.writer is not None and state.follower is not None
    writer = state.writer
    leases = cluster.LeaseKeeper(state.pool, state.follower.me, settings.lease_ttl_s,
                                 engine=lambda: state.engine, flush=writer.flush,
                                 follower=state.follower)
    state.leases = leases
    lending = cluster.Lending(state.pool, state.db_url, leases, lambda: state.engine,
                              wait_s=settings.lend_wait_s)
    await lending.start()
    leases.after_tick = lending.ensure
    state.lending = lending
    await state.follower.catch_up()  # what was written while the engine loaded
    try:
        await leases.tick()
    except Exception as exc:  # the loop below retries; /readyz says not ready meanwhile
        _log.warning("lease_first_tick_failed", error=type(exc).__name__)
    tasks = [track(state, leases.run()), track(state, state.follower.run(settings.cluster_poll_s))]
    _log.info("worker_started", worker=state.follower.me, owned=len(leases.owned),
              workers=len(leases.members))
    yield
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    state.lending = None
    await lending.stop()
    await leases.leave()


def _sip_persist(state: State) -> Callable[[list[Any]], bool]:
    """SIP call records go to the spool like webhook ones, marked as carried over SIP."""

    def persist(records: list[Any]) -> bool:
        assert state.writer is not None
        marks = [CallUpdate(r.call_id, r.at, status="redirected", carrier="sip")
                 for r in records if isinstance(r, CallRecord)]
        return state.writer.add_durable_nowait([*records, *marks])

    return persist


async def _sip(app: web.Application) -> AsyncIterator[None]:
    settings, state = app[SETTINGS], app[STATE]
    if settings.sip_port is None:
        yield
        return
    config = SipConfig(termination=settings.sip_termination, trunks=settings.sip_trunks,
                       reject_unknown=settings.sip_unknown_policy == "reject",
                       history_info=settings.sip_history_info,
                       rate_per_source=settings.sip_rate_per_source)
    server = SipServer(config, lambda: state.engine, _sip_persist(state))
    state.sip = server
    state.sip_address = await server.start(settings.sip_host or settings.host, settings.sip_port,
                                           reuse_port=settings.reuse_port)
    yield
    await server.stop()


async def _stop_tasks(app: web.Application) -> None:
    tasks = list(app[STATE].tasks)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _live(state: State) -> dict[str, Any]:
    engine, writer = state.engine, state.writer
    return {
        "pools": engine.pool_stats() if engine is not None else [],
        "engine_sessions": engine.sessions_count() if engine is not None else 0,
        "writer_queue_depth": writer.depth if writer else 0,
        "writer_last_flush_seconds": writer.last_flush_s if writer else 0,
        "writer_spool_errors": writer.spool_errors if writer else 0,
        "writer_quarantined_records": writer.quarantined if writer else 0,
        "writer_healthy": int(writer.healthy) if writer else 0,
        "sip": state.sip,
    }


def create_app(settings: Settings, *, config_path: Path | None = None) -> web.Application:
    app = web.Application(middlewares=[observe], client_max_size=settings.max_body_bytes)
    state = State()
    state.admin_key = settings.admin_key or secrets.token_urlsafe(24)
    app[SETTINGS] = settings
    app[STATE] = state
    app[CONFIG_PATH] = config_path
    app[METRICS] = Metrics(lambda: _live(state))
    app[METRICS].registry.register(ClusterState(lambda: (state.leases, state.lending)))
    app[swap.RATE_LIMITER] = RateLimiter(settings.swap_rate_per_minute)
    app.cleanup_ctx.extend([_database, _config_file, _engine, _writer, _cluster, _sip])
    app.on_shutdown.append(_stop_tasks)
    for module in (ops, swap, admin, voice, calls, reports, static, ui):
        app.router.add_routes(module.routes())
    app.router.add_routes(openapi_routes())
    return app
