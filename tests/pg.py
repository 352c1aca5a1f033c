"""Real PostgreSQL for tests: `DATABASE_URL` when set, else one embedded server (pgserver) per
test session; each test gets a fresh database. `Restartable` is a server of its own that a test
can stop and start (readiness, write-behind and fail-open tests)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import asyncpg


def pg_dir(name: str = "pg") -> Path:
    """A data directory outside pytest's tmp root. As root, pgserver runs PostgreSQL as a
    `pgserver` user that must traverse the path, and pytest keeps its tmp root at mode 0700."""
    path = Path(tempfile.mkdtemp(prefix=f"dni-test-{name}-"))
    path.chmod(0o755)
    return path


def start_server(data_dir: Path) -> Any:
    import pgserver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pgserver.get_server(data_dir, cleanup_mode="stop")


async def tune_for_tests(admin_url: str) -> None:
    """Durability of the test server's own files is not under test: skip fsync so that
    CREATE DATABASE and commits are fast. (The gateway's spool still fsyncs.)"""
    conn = await asyncpg.connect(admin_url)
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name` (works for socket and TCP URLs)."""
    head, sep, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


async def create_database(admin_url: str, template: str | None = None) -> str:
    """A new empty database, or a copy of `template` (much faster than migrating anew)."""
    name = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(admin_url)
    try:
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def create_template(admin_url: str) -> str:
    """A migrated database that per-test databases are copied from."""
    from gateway.store import migrate

    await tune_for_tests(admin_url)
    url = await create_database(admin_url)
    conn = await asyncpg.connect(url)
    try:
        await migrate.apply(conn)
    finally:
        await conn.close()
    return url.partition("?")[0].rsplit("/", 1)[1]


def admin_url_from_env() -> str | None:
    return os.environ.get("DATABASE_URL") or None


class Restartable:
    """An embedded server a test owns: `stop()` takes the database away, `start()` brings it
    back on the same socket, so pools reconnect to the same URL."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir or pg_dir("restartable")
        self.server: Any = start_server(self.data_dir)
        self.url = str(self.server.get_uri())
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.cleanup()
            self.running = False

    def start(self) -> None:
        self.server = start_server(self.data_dir)
        self.running = True
        assert str(self.server.get_uri()) == self.url

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
