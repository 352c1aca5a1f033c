"""Shared fixtures: a real PostgreSQL, a fresh database per test, and the gateway app served on a
real socket (port 0) with an aiohttp client."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import log
from gateway.settings import Settings
from tests import pg

ADMIN_KEY = "test-admin-key-0123456789"
DEMO_CONFIG = {
    "sites": [{
        "key": "acme", "name": "Acme Plumbing", "swap_targets": ["+18005550100"],
        "allowed_origins": ["https://acme.test"],
        "sources": [
            {"name": "Google Ads", "kind": "online", "match": {"gclid": True},
             "forward_to": "+18005550100", "numbers": ["+14155550101", "+14155550102"]},
            {"name": "Billboard I-80", "kind": "offline", "forward_to": "+18005550100",
             "numbers": ["+14155550199"]},
        ],
    }],
}

log.configure("console", "warning")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = pg.admin_url_from_env()
    if url is not None:
        yield url
        return
    data = pg.pg_dir()
    server = pg.start_server(data)
    yield str(server.get_uri())
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
async def template_db(pg_admin_url: str) -> str:
    return await pg.create_template(pg_admin_url)


@pytest.fixture
async def db_url(pg_admin_url: str, template_db: str) -> str:
    """A fresh, migrated database for each test."""
    return await pg.create_database(pg_admin_url, template_db)


@pytest.fixture
async def empty_db_url(pg_admin_url: str) -> str:
    """A fresh database with nothing in it (migration tests)."""
    return await pg.create_database(pg_admin_url)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", admin_key=ADMIN_KEY,
                    public_url="http://gateway.test", twilio_auth_tokens=("twilio-token-1",),
                    flush_interval_s=0.05)


class Gateway:
    """A running app and a client bound to it."""

    def __init__(self, server: TestServer, client: TestClient) -> None:
        self.server = server
        self.client = client
        self.app = server.app

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def import_config(self, config: dict[str, Any]) -> None:
        resp = await self.client.post("/v1/import", json=config, headers=self.auth)
        assert resp.status == 200, await resp.text()


async def start_gateway(settings: Settings, **kwargs: Any) -> Gateway:
    from gateway.app import create_app

    app = create_app(settings, **kwargs)
    server = TestServer(app, port=0)
    client = TestClient(server)
    await client.start_server()
    return Gateway(server, client)


@pytest.fixture
async def gateway(settings: Settings, loop_errors: list[Any]) -> AsyncIterator[Gateway]:
    gw = await start_gateway(settings)
    await gw.import_config(DEMO_CONFIG)
    yield gw
    await gw.client.close()


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Unhandled exceptions in the event loop fail the test instead of vanishing."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    yield seen
    loop.set_exception_handler(previous)
    assert not seen, f"unhandled loop exceptions: {seen}"
