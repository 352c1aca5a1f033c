"""`dni-gateway serve --workers N`: N worker processes sharing the HTTP and SIP ports.

The supervisor does once what must happen once (start the embedded PostgreSQL when DATABASE_URL
is not set, apply migrations, import the config file, pick the ports and the admin key), then
runs each worker as `python -m gateway serve` with DNI_CLUSTER=on and DNI_REUSE_PORT=on: the
kernel spreads connections and datagrams over them (SO_REUSEPORT). A worker that exits is
restarted (after 1 s, doubling up to 30 s while it keeps failing; a worker that ran a minute is
healthy again); its slot's spool directory is replayed by its successor. SIGTERM or SIGINT stops
the workers (SIGTERM, then SIGKILL after the shutdown grace) and then the embedded database.

Separate hosts behind a load balancer need no supervisor: run `serve` on each with
DNI_CLUSTER=on and the same DATABASE_URL and DNI_ADMIN_KEY.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway import log
from gateway.settings import Settings

RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0
READY_WAIT_S = 120.0  # a worker loads the engine from Postgres before it listens

_log = log.get("gateway.supervisor")


@dataclass
class Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = RESTART_MIN_S
    restart_at: float | None = None
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


def free_port(host: str, kind: socket.SocketKind) -> int:
    """A port free for TCP or UDP on `host` (bound and released: the workers bind it next)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def _prepare(url: str, config: Path | None) -> None:
    from gateway.store import migrate
    from gateway.store.db import create_pool

    pool = await create_pool(url)
    try:
        async with pool.acquire() as conn:
            await migrate.apply(conn)
        if config is not None:
            from gateway.configfile import import_file

            await import_file(pool, config)
    finally:
        await pool.close()


def _wait_listening(host: str, port: int, procs: list[Slot], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(s.proc is not None and s.proc.poll() is not None for s in procs):
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


class Supervisor:
    def __init__(self, settings: Settings, workers: int, config: Path | None,
                 banner: Callable[[Settings, str, bool], None]) -> None:
        self.settings = settings
        self.workers = workers
        self.config = config
        self.banner = banner
        self.slots = [Slot(i) for i in range(workers)]
        self.stopping = False
        self.env: dict[str, str] = {}

    def run(self) -> int:
        s = self.settings
        embedded = None
        url = s.database_url
        if url is None:
            from gateway.store.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(s.data_dir / "pg")
            url = embedded.start()
        try:
            asyncio.run(_prepare(url, self.config))
            port = s.port or free_port(s.host, socket.SOCK_STREAM)
            admin_key = s.admin_key or secrets.token_urlsafe(24)
            env = dict(os.environ, DATABASE_URL=url, DNI_CLUSTER="on", DNI_REUSE_PORT="on",
                       DNI_HOST=s.host, DNI_PORT=str(port), DNI_ADMIN_KEY=admin_key,
                       DNI_DATA_DIR=str(s.data_dir))
            if s.sip_port is not None:
                sip_port = s.sip_port or free_port(s.sip_host or s.host, socket.SOCK_DGRAM)
                env["DNI_SIP_PORT"] = str(sip_port)
            self.env = env
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
            for slot in self.slots:
                self._spawn(slot)
            if _wait_listening(s.host, port, self.slots, READY_WAIT_S):
                self.banner(s.with_overrides(port=port), admin_key, s.admin_key is None)
                print(f"  workers:  {self.workers} (supervisor pid {os.getpid()})", flush=True)
            self._watch()
        finally:
            self._stop_all()
            if embedded is not None:
                embedded.stop()
        return 0

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def _spawn(self, slot: Slot) -> None:
        env = dict(self.env, DNI_WORKER_INDEX=str(slot.index))
        slot.proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env)
        slot.started = time.monotonic()
        slot.restart_at = None
        _log.info("worker_spawned", slot=slot.index, pid=slot.proc.pid)

    def _watch(self) -> None:
        while not self.stopping:
            now = time.monotonic()
            for slot in self.slots:
                if slot.proc is not None and slot.restart_at is None:
                    code = slot.proc.poll()
                    if code is None:
                        continue
                    slot.exits.append(code)
                    ran = now - slot.started
                    slot.delay = RESTART_MIN_S if ran >= HEALTHY_AFTER_S else min(
                        RESTART_MAX_S, slot.delay * 2 if slot.restarts else RESTART_MIN_S)
                    slot.restart_at = now + slot.delay
                    _log.warning("worker_exited", slot=slot.index, pid=slot.proc.pid,
                                 code=code, restart_in_s=slot.delay)
                elif slot.restart_at is not None and now >= slot.restart_at:
                    slot.restarts += 1
                    self._spawn(slot)
            time.sleep(0.1)

    def _stop_all(self) -> None:
        live = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + 10.0
        for p in live:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.warning("worker_killed", pid=p.pid)
                p.kill()
                p.wait()
