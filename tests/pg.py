"""Real PostgreSQL for tests: `DATABASE_URL` when set, else one embedded server (pgserver) per
test session; each test gets a fresh database. `Restartable` is a server of its own that a test
can stop and start (readiness, write-behind and fail-open tests)."""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import asyncpg


def start_server(data_dir: Path) -> Any:
    import pgserver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pgserver.get_server(data_dir, cleanup_mode="stop")


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name` (works for socket and TCP URLs)."""
    head, sep, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}{sep}{query}"


async def create_database(admin_url: str) -> str:
    name = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


def admin_url_from_env() -> str | None:
    return os.environ.get("DATABASE_URL") or None


class Restartable:
    """An embedded server a test owns: `stop()` takes the database away, `start()` brings it
    back on the same socket, so pools reconnect to the same URL."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.server: Any = start_server(data_dir)
        self.url = str(self.server.get_uri())

    def stop(self) -> None:
        self.server.cleanup()

    def start(self) -> None:
        self.server = start_server(self.data_dir)
        assert str(self.server.get_uri()) == self.url
