import asyncio
from pathlib import Path

import asyncpg
import pytest

from gateway.store import migrate


async def test_migrations_apply_to_empty_database_and_are_idempotent(empty_db_url: str) -> None:
    conn = await asyncpg.connect(empty_db_url)
    try:
        first = await migrate.apply(conn)
        assert first == [m.name for m in migrate.discover()]
        assert await migrate.apply(conn) == []
        assert await migrate.pending(conn) == []
        tables = {r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert {"sites", "sources", "numbers", "visitors", "sessions", "session_events",
                "calls", "call_candidates", "call_matches", "schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_two_instances_starting_together_apply_each_migration_once(empty_db_url: str) -> None:
    conns = [await asyncpg.connect(empty_db_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.apply(c) for c in conns))
        applied = [name for r in results for name in r]
        assert sorted(applied) == sorted(m.name for m in migrate.discover())
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(migrate.discover())
    finally:
        for c in conns:
            await c.close()


async def test_a_failing_migration_is_rolled_back_and_not_recorded(
    empty_db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE a (x int);")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE b (x int); SELECT nonsense_column;")
    conn = await asyncpg.connect(empty_db_url)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await migrate.apply(conn, tmp_path)
        assert await migrate.pending(conn, tmp_path) == ["002_bad.sql"]
        assert await conn.fetchval("SELECT to_regclass('b')") is None
    finally:
        await conn.close()


def test_migration_files_must_be_numbered(tmp_path: Path) -> None:
    (tmp_path / "init.sql").write_text("SELECT 1;")
    with pytest.raises(migrate.MigrationError, match="NNN_description"):
        migrate.discover(tmp_path)
