"""Real gateway processes (`python -m gateway serve`, DNI_CLUSTER=on) on one test database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gateway.engine.config import config_to_dict, parse_config
from gateway.store.config_repo import import_config
from gateway.store.db import create_pool
from gateway.supervisor import free_port
from tests.conftest import ADMIN_KEY
from tests.web.test_voice import call_params, signed

LEASE_TTL_S = 3.0
BUSINESS = "+18005550100"
POOL = [f"+1415555{n:04d}" for n in range(300, 312)]  # 12 numbers: 4 per worker of 3


def cluster_config(numbers: list[str] = POOL, **ads: Any) -> dict[str, Any]:
    return {"sites": [{
        "key": "acme", "name": "Acme Plumbing", "swap_targets": [BUSINESS],
        "allowed_origins": ["https://acme.test"],
        "sources": [{"name": "Google Ads", "kind": "online", "match": {"gclid": True},
                     "forward_to": BUSINESS, "numbers": numbers} | ads],
    }]}


class Workers:
    """Gateway processes sharing `db_url`, each on its own loopback port (as separate hosts
    behind a load balancer would be), and a client for them."""

    def __init__(self, db_url: str, tmp: Path, http: aiohttp.ClientSession) -> None:
        self.db_url = db_url
        self.tmp = tmp
        self.http = http
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.ports: dict[int, int] = {}
        self.killed: set[int] = set()

    def env(self, i: int, **extra: str) -> dict[str, str]:
        return dict(os.environ, DATABASE_URL=self.db_url, DNI_CLUSTER="on",
                    DNI_HOST="127.0.0.1", DNI_PORT=str(self.ports[i]), DNI_ADMIN_KEY=ADMIN_KEY,
                    DNI_DATA_DIR=str(self.tmp / f"w{i}"), DNI_LEASE_TTL=str(LEASE_TTL_S),
                    DNI_FLUSH_INTERVAL="0.05", DNI_CLUSTER_POLL="0.1", DNI_SWAP_RATE="1000000",
                    DNI_LOG_LEVEL="warning", DNI_PUBLIC_URL="http://gateway.test",
                    DNI_TWILIO_AUTH_TOKEN="twilio-token-1", DNI_SHUTDOWN_GRACE="1",
                    # The lending protocol, not this busy machine's latency, is under test.
                    DNI_LEND_WAIT="2") | extra

    def start(self, i: int, **extra: str) -> None:
        self.ports.setdefault(i, free_port("127.0.0.1", socket.SOCK_STREAM))
        with open(self.tmp / f"w{i}.log", "ab") as log:
            self.procs[i] = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve"], env=self.env(i, **extra),
                stdout=subprocess.DEVNULL, stderr=log)

    def url(self, i: int, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[i]}{path}"

    async def readyz(self, i: int, *, any_status: bool = False) -> dict[str, Any] | None:
        """The worker's /readyz body when it is ready (or whatever it says, `any_status`)."""
        try:
            async with self.http.get(self.url(i, "/readyz")) as resp:
                body: dict[str, Any] = await resp.json()
                return body if resp.status == 200 or any_status else None
        except (aiohttp.ClientError, OSError):
            return None

    async def until(self, what: str, check: Any, timeout_s: float = 30.0) -> float:
        """Poll `check()` (async, truthy when done); the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if await check():
                return time.monotonic() - started
            for i, p in self.procs.items():
                assert p.poll() is None or i in self.killed, (
                    f"worker {i} exited: {(self.tmp / f'w{i}.log').read_text()[-3000:]}")
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async def balanced(self, live: list[int], numbers: int = len(POOL)) -> bool:
        """Every live worker ready, holding its whole share, listening for loans, and the
        shares cover the pool."""
        states = [await self.readyz(i) for i in live]
        if any(s is None for s in states):
            return False
        shares = [s["cluster"] for s in states if s is not None]
        return (all(c["owned"] == c["share"] and c["workers"] == len(live) and c["lending"]
                    for c in shares)
                and sum(c["owned"] for c in shares) == numbers)

    def kill(self, i: int) -> None:
        self.killed.add(i)
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    async def swap(self, i: int, visitor: str | None = None,
                   click: str = "x", site: str = "acme") -> dict[str, Any]:
        body = {"site": site, "visitor": visitor, "url": f"https://acme.test/?gclid={click}",
                "referrer": "https://www.google.com/"}
        async with self.http.post(self.url(i, "/v1/swap"), json=body,
                                  headers={"Origin": "https://acme.test",
                                           "User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"},
                                  ) as resp:
            assert resp.status == 200, await resp.text()
            out: dict[str, Any] = await resp.json()
            return out

    async def event(self, i: int, session: str, kind: str) -> None:
        async with self.http.post(self.url(i, f"/v1/sessions/{session}/events"),
                                  json={"kind": kind},
                                  headers={"Origin": "https://acme.test"}) as resp:
            assert resp.status == 204, await resp.text()

    async def call(self, i: int, call_id: str, to: str, caller: str) -> dict[str, Any]:
        """A Twilio voice webhook on worker i, then the call as stored (read on worker i)."""
        req = signed("/v1/voice/twilio", call_params(call_id, to, caller=caller))
        async with self.http.post(self.url(i, "/v1/voice/twilio"), **req) as resp:
            assert resp.status == 200, await resp.text()
            assert "<Dial" in await resp.text()
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            async with self.http.get(self.url(i, f"/v1/calls/{call_id}"), headers=auth) as resp:
                if resp.status == 200:
                    out: dict[str, Any] = await resp.json()
                    return out
            await asyncio.sleep(0.05)
        raise AssertionError(f"call {call_id} never stored")

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def load_config(db_url: str, config: dict[str, Any]) -> None:
    pool = await create_pool(db_url)
    try:
        await import_config(pool, config_to_dict(parse_config(config)))
    finally:
        await pool.close()


async def rows(db_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@pytest.fixture
async def workers(db_url: str, tmp_path: Path) -> AsyncIterator[Workers]:
    async with aiohttp.ClientSession() as http:
        w = Workers(db_url, tmp_path, http)
        try:
            yield w
        finally:
            with contextlib.suppress(Exception):
                w.stop_all()
