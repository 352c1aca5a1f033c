"""Databases holding a simulated week, one per pool size, shared by the tests of this folder
(storing a week of traffic takes seconds; every test only reads it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.store.db import create_pool
from gateway.store.reports import accuracy_report
from tests import pg
from tests.reports import sim

SimDb = Callable[[int], Awaitable[str]]
SimReport = Callable[[int], Awaitable[dict[str, Any]]]


@pytest.fixture(scope="session")
async def sim_db(pg_admin_url: str, template_db: str) -> SimDb:
    """`await sim_db(pool)`: the URL of a database holding the simulated week at that size."""
    urls: dict[int, str] = {}

    async def get(pool: int) -> str:
        if pool not in urls:
            url = await pg.create_database(pg_admin_url, template_db)
            await sim.store(url, pool)
            urls[pool] = url
        return urls[pool]

    return get


@pytest.fixture(scope="session")
async def sim_report(sim_db: SimDb) -> SimReport:
    """`await sim_report(pool)`: the accuracy report of the simulated week at that size."""
    done: dict[int, dict[str, Any]] = {}

    async def get(pool: int) -> dict[str, Any]:
        if pool not in done:
            db = await create_pool(await sim_db(pool))
            try:
                done[pool] = await accuracy_report(db, sim.run(pool).config, site="sim",
                                                   since=sim.SINCE, until=sim.UNTIL)
            finally:
                await db.close()
        return done[pool]

    return get


def online(report: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in report["sources"] if r["source"] == sim.SOURCE)
