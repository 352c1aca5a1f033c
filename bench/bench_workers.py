"""Scale-out: swap throughput of `serve --workers 2` against `serve --workers 1` (one process,
the default deployment), same load tool (wrk), same run, same database; and the time for the
surviving workers to own every number again after one worker is SIGKILLed.

wrk runs on the same 2-core machine: its own CPU use (user + system seconds per wall second,
from getrusage) is printed beside each figure, since it competes with the workers for cores.

Run: .venv/bin/python -m bench.bench_workers [--seconds 10] [--connections 64] [--ttl 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from bench import harness
from bench.bench_swap_http import write_config
from gateway.store.embedded import EmbeddedPostgres


@contextmanager
def served(workers: int, db_url: str, data: Path, ttl: float) -> Iterator[tuple[str, Path]]:
    port = harness.free_port()
    env = dict(os.environ, DATABASE_URL=db_url, DNI_DATA_DIR=str(data), DNI_PORT=str(port),
               DNI_ADMIN_KEY=harness.ADMIN_KEY, DNI_LOG_LEVEL="warning",
               DNI_SWAP_RATE="1000000", DNI_LEASE_TTL=str(ttl))
    log_path = data / f"workers{workers}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [harness.PY, "-m", "gateway", "serve", "--workers", str(workers),
             "--config", str(write_config())],
            env=env, cwd=harness.ROOT, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        harness.wait_ready(base + "/readyz", proc)
        yield base, log_path
    finally:
        harness.stop(proc)


def wrk_with_cpu(url: str, seconds: int, connections: int) -> tuple[dict[str, float], float]:
    """wrk's figures, and the cores wrk itself used on average."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = harness.wrk(url, harness.ROOT / "bench" / "swap.lua", seconds, connections)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, cpu / wall


async def _owners(db_url: str) -> dict[str, tuple[str | None, bool]]:
    conn = await asyncpg.connect(db_url)
    try:
        return {r["number"]: (r["owner"], r["valid"]) for r in await conn.fetch(
            "SELECT number, owner, expires_at > now() AS valid FROM number_leases")}
    finally:
        await conn.close()


async def _workers(db_url: str) -> dict[int, str]:
    conn = await asyncpg.connect(db_url)
    try:
        return {r["pid"]: r["id"] for r in await conn.fetch(
            "SELECT pid, id FROM gateway_workers WHERE expires_at > now()")}
    finally:
        await conn.close()


def handover(db_url: str, timeout_s: float) -> tuple[float, int]:
    """SIGKILL one worker; seconds until each of its numbers has a live owner again."""
    workers = asyncio.run(_workers(db_url))
    pid = min(workers)
    dead = workers[pid]
    theirs = [n for n, (owner, _) in asyncio.run(_owners(db_url)).items() if owner == dead]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() - killed < timeout_s:
        owners = asyncio.run(_owners(db_url))
        if all(owners[n][0] not in (None, dead) and owners[n][1] for n in theirs):
            return time.monotonic() - killed, len(theirs)
        time.sleep(0.05)
    raise RuntimeError("numbers not handed over")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--ttl", type=float, default=10.0, help="DNI_LEASE_TTL for the workers")
    args = p.parse_args()
    data = Path(tempfile.mkdtemp(prefix="dni-bench-workers-"))
    data.chmod(0o755)
    pg = EmbeddedPostgres(data / "pg")
    db_url = pg.start()
    try:
        results = {}
        for n in (1, 2):
            with served(n, db_url, data, args.ttl) as (base, _):
                harness.wrk(base + "/v1/swap", harness.ROOT / "bench" / "swap.lua", 2,
                            args.connections)  # warm-up
                results[n] = wrk_with_cpu(base + "/v1/swap", args.seconds, args.connections)
                if n == 2:
                    took, moved = handover(db_url, args.ttl * 3)
        for n, (out, cpu) in results.items():
            print(f"--workers {n}: {out['rps']:8.0f} req/s  non-2xx {out['non2xx']:.0f}  "
                  f"socket errors {out['socket_errors']:.0f}  (wrk used {cpu:.2f} cores)")
        print(f"ratio 2 workers / 1 : {results[2][0]['rps'] / results[1][0]['rps']:.2f}"
              f"  ({os.cpu_count()} cores, wrk on the same machine)")
        print(f"handover after SIGKILL: {took:.2f} s for {moved} numbers "
              f"(DNI_LEASE_TTL={args.ttl:g} s)")
    finally:
        pg.stop()
        print(f"(logs: {data})", file=sys.stderr)


if __name__ == "__main__":
    main()
