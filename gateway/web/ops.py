"""Operator endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.store import migrate
from gateway.web.cluster_metrics import WorkerLabelled
from gateway.web.keys import METRICS, STATE

READY_PROBE_TIMEOUT_S = 2.0  # a readiness probe must answer well inside a k8s 5 s timeout


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database answers, migrations are applied and the engine is loaded (and,
    with DNI_CLUSTER=on, the worker's number leases are valid)."""
    state = request.app[STATE]
    checks = {"engine": state.engine is not None, "database": False, "migrations": False}
    if state.pool is not None:
        try:
            async with asyncio.timeout(READY_PROBE_TIMEOUT_S):
                async with state.pool.acquire() as conn:
                    checks["migrations"] = not await migrate.pending(conn)
                    checks["database"] = True
        except (OSError, TimeoutError, Exception):
            checks["database"] = False
    body: dict[str, object] = {"writer_queue": state.writer.depth if state.writer else 0}
    if state.leases is not None:
        # Scale-out: not ready while this worker holds no valid lease (not renewed in time):
        # it cannot hand out numbers, and a load balancer should send visitors elsewhere.
        checks["leases"] = state.leases.ready
        body["cluster"] = state.leases.snapshot()
        if state.lending is not None:  # its LISTEN connection is up: numbers can be lent
            body["cluster"]["lending"] = state.lending.listening()
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks, **body},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    registry: Any = request.app[METRICS].registry
    worker = request.app[STATE].worker_id
    if worker is not None:  # scale-out: say which worker answered
        registry = WorkerLabelled(registry, worker)
    data = generate_latest(registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


def routes() -> list[web.RouteDef]:
    return [web.get("/healthz", healthz), web.get("/readyz", readyz),
            web.get("/metrics", metrics)]
