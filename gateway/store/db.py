"""Connection pool and the small helpers every repository shares."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg

POOL_MIN = 1
POOL_MAX = 10  # the hot paths never wait on the database; 10 covers writer + API + loader
COMMAND_TIMEOUT_S = 10.0  # no admin or report query should take longer; the writer retries
CONNECT_TIMEOUT_S = 5.0  # fail fast at start and in readiness probes


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url,
        min_size=POOL_MIN,
        max_size=POOL_MAX,
        command_timeout=COMMAND_TIMEOUT_S,
        timeout=CONNECT_TIMEOUT_S,
        init=_init,
    )


def ts(at: float | None) -> datetime | None:
    """Epoch seconds (the engine's time) to an aware datetime (Postgres' timestamptz)."""
    return None if at is None else datetime.fromtimestamp(at, UTC)


def epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@contextlib.asynccontextmanager
async def configured_pool(settings: Any) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the database the settings name: DATABASE_URL, or the embedded server in
    DNI_DATA_DIR (started here and stopped on exit). For the CLI's one-shot commands."""
    from gateway.store.embedded import EmbeddedPostgres

    embedded = None
    url = settings.database_url
    if url is None:
        embedded = EmbeddedPostgres(settings.data_dir / "pg")
        url = await asyncio.get_running_loop().run_in_executor(None, embedded.start)
    pool = await create_pool(url)
    try:
        yield pool
    finally:
        await pool.close()
        if embedded is not None:
            await asyncio.get_running_loop().run_in_executor(None, embedded.stop)
