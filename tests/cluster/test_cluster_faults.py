"""Several processes and the database going away: leases lapse, then everything resumes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests import pg
from tests.cluster.conftest import LEASE_TTL_S, POOL, Workers, cluster_config, load_config


@pytest.fixture
async def own_server() -> AsyncIterator[pg.Restartable]:
    server = await asyncio.get_running_loop().run_in_executor(None, pg.Restartable)
    try:
        yield server
    finally:
        server.remove()


async def test_leases_lapse_while_the_database_is_gone_and_come_back_with_it(
        own_server: pg.Restartable, workers: Workers) -> None:
    loop = asyncio.get_running_loop()
    workers.db_url = await pg.create_database(own_server.url)  # migrated by the workers
    live = [0, 1]
    workers.start(0)
    await workers.until("first worker", lambda: workers.readyz(0, any_status=True), 60)
    await load_config(workers.db_url, cluster_config())
    workers.start(1)
    await workers.until("balanced", lambda: workers.balanced(live), timeout_s=60)

    await loop.run_in_executor(None, own_server.stop)

    async def lapsed() -> bool:
        states = [await workers.readyz(i, any_status=True) for i in live]
        return all(s is not None and s["status"] == "not_ready"
                   and s["cluster"]["owned"] == 0 for s in states)

    took = await workers.until("leases lapsed", lapsed, timeout_s=LEASE_TTL_S + 5)
    assert took <= LEASE_TTL_S + 2
    # Still answering: a new visitor sees the site's own number, nobody hands out a number.
    visit = await workers.swap(0)
    assert visit["session"] is None

    await loop.run_in_executor(None, own_server.start)
    await workers.until("balanced again", lambda: workers.balanced(live), timeout_s=30)
    # Lending works again too (the listening connection was re-established).
    visits = await asyncio.gather(*(workers.swap(0, click=str(i)) for i in range(12)))
    assert sorted(v["number"] for v in visits) == sorted(POOL)
