"""Restart: time to rebuild the engine from PostgreSQL holding 1,000,000 sessions (target
<= 10 s), through the same loader the gateway runs at start.

Run: .venv/bin/python -m bench.bench_restore [--sessions 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from gateway.store import migrate
from gateway.store.config_repo import import_config
from gateway.store.db import create_pool
from gateway.store.loader import build_engine
from tests import pg

POOL = 1000


def config() -> dict[str, object]:
    return {"sites": [{
        "key": "bench", "name": "Bench", "swap_targets": ["+18005550100"],
        "sources": [{"name": "Google Ads", "kind": "online", "match": {"gclid": True},
                     "forward_to": "+18005550100",
                     "numbers": [f"+1415230{i:04d}" for i in range(POOL)]}]}]}


SEED = """
INSERT INTO sessions (id, visitor, site, source, number, started_at, last_activity, pageviews)
SELECT 's_r' || g, 'v_r' || (g % ($1::int * 7 / 10)), 'bench', 'Google Ads',
       '+1415230' || lpad((g % 1000)::text, 4, '0'),
       to_timestamp($2::float8 - (g % 2500000)), to_timestamp($2::float8 - (g % 2500000) + 120),
       1 + g % 5
FROM generate_series(1, $1::int) AS g
"""


async def run(sessions: int) -> None:
    server = pg.Restartable()
    try:
        url = await pg.create_database(server.url)
        conn = await asyncpg.connect(url)
        await migrate.apply(conn)
        t = time.perf_counter()
        await conn.execute(SEED, sessions, time.time())
        await conn.execute("ANALYZE sessions")
        await conn.close()
        print(f"seeded {sessions:,} sessions over the last 29 days in "
              f"{time.perf_counter() - t:.1f} s")
        pool = await create_pool(url)
        from gateway.engine.config import config_to_dict, parse_config

        await import_config(pool, config_to_dict(parse_config(config())))
        t = time.perf_counter()
        engine = await build_engine(pool)
        took = time.perf_counter() - t
        await pool.close()
        print(f"engine rebuilt from PostgreSQL: {engine.sessions_count():,} sessions in "
              f"{took:.2f} s (target <= 10 s)")
    finally:
        server.remove()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sessions", type=int, default=1_000_000)
    asyncio.run(run(p.parse_args().sessions))


if __name__ == "__main__":
    main()
