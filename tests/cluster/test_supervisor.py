"""`serve --workers 2`: two workers on one port, restarted when one dies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from gateway.supervisor import free_port
from tests.cluster.conftest import cluster_config, load_config, rows
from tests.conftest import ADMIN_KEY


async def across_workers(port: int, path: str, read: Callable[[aiohttp.ClientResponse],
                         Awaitable[set[str]]], tries: int = 40) -> set[str]:
    """What `read` finds in the answers to `path` on the shared port, a new connection each
    time (the kernel picks a worker per connection)."""
    seen: set[str] = set()
    for _ in range(tries):
        try:
            async with aiohttp.ClientSession() as http, \
                    http.get(f"http://127.0.0.1:{port}{path}") as resp:
                seen |= await read(resp)
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.02)
    return seen


async def _ready_worker(resp: aiohttp.ClientResponse) -> set[str]:
    return {(await resp.json())["cluster"]["worker"]} if resp.status == 200 else set()


async def _workers_counting_options(resp: aiohttp.ClientResponse) -> set[str]:
    """Workers whose metrics count SIP OPTIONS (every sample carries the worker's id)."""
    return {line.split('worker="', 1)[1].split('"', 1)[0]
            for line in (await resp.text()).splitlines()
            if line.startswith("dni_sip_requests_total{") and 'method="OPTIONS"' in line
            and float(line.rsplit(" ", 1)[1]) > 0}


async def workers_seen(port: int, tries: int = 40) -> set[str]:
    """Worker ids answering /readyz on the shared port."""
    return await across_workers(port, "/readyz", _ready_worker, tries)


def sip_options(port: int, n: int) -> int:
    """OPTIONS from `n` sockets (n source ports: the kernel picks a worker by the peer's
    address), each sent up to three times as a UDP client retransmits; how many got 200."""
    ok = 0
    for k in range(n):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(1.0)
            s.bind(("127.0.0.1", 0))
            probe = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
                     f"Via: SIP/2.0/UDP 127.0.0.1:{s.getsockname()[1]};branch=z9hG4bKsup{k}\r\n"
                     f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{k}\r\n"
                     f"To: <sip:127.0.0.1>\r\nCall-ID: sup-{k}\r\nCSeq: 1 OPTIONS\r\n"
                     f"Content-Length: 0\r\n\r\n").encode()
            for _ in range(3):
                s.sendto(probe, ("127.0.0.1", port))
                with contextlib.suppress(TimeoutError):
                    ok += s.recv(4096).startswith(b"SIP/2.0 200")
                    break
    return ok


async def test_workers_share_the_port_and_a_dead_one_is_restarted(
        db_url: str, tmp_path: Path) -> None:
    await load_config(db_url, cluster_config())
    port = free_port("127.0.0.1", socket.SOCK_STREAM)
    sip_port = free_port("127.0.0.1", socket.SOCK_DGRAM)
    env = dict(os.environ, DATABASE_URL=db_url, DNI_PORT=str(port), DNI_HOST="127.0.0.1",
               DNI_SIP_HOST="127.0.0.1", DNI_SIP_PORT=str(sip_port),
               DNI_ADMIN_KEY=ADMIN_KEY, DNI_DATA_DIR=str(tmp_path / "data"),
               DNI_LEASE_TTL="3", DNI_LOG_LEVEL="warning", DNI_SHUTDOWN_GRACE="1")
    with open(tmp_path / "sup.log", "ab") as log:
        sup = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--workers", "2"],
                               env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        seen: set[str] = set()
        while len(seen) < 2 and time.monotonic() < deadline:
            seen |= await workers_seen(port, tries=10)
        assert len(seen) == 2, (tmp_path / "sup.log").read_text()[-3000:]
        # The SIP port is shared too: every probe answered, by both workers.
        assert await asyncio.to_thread(sip_options, sip_port, 24) == 24
        assert await across_workers(port, "/metrics", _workers_counting_options) == seen
        ids = {r["pid"]: r["id"] for r in await rows(
            db_url, "SELECT pid, id FROM gateway_workers WHERE expires_at > now()")}
        pids = set(ids)
        assert len(pids) == 2
        os.kill(min(pids), signal.SIGKILL)
        dead = ids[min(pids)]
        while time.monotonic() < deadline + 30:
            live = {r["pid"] for r in await rows(
                db_url, "SELECT pid FROM gateway_workers WHERE expires_at > now() "
                        "AND started_at > now() - interval '20 seconds'")}
            if live - pids:
                break
            await asyncio.sleep(0.2)
        assert live - pids, "the dead worker was not replaced"
    finally:
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=30) == 0
    # A clean stop releases every lease and leaves no worker row behind; only the killed
    # worker's remain, until they expire.
    owners = {r["owner"] for r in await rows(
        db_url, "SELECT owner FROM number_leases WHERE owner IS NOT NULL")}
    assert owners <= {dead}
    assert {r["id"] for r in await rows(db_url, "SELECT id FROM gateway_workers")} <= {dead}
