"""Shared pieces of the HTTP benchmarks: start the real gateway and a bare aiohttp baseline as
separate processes on loopback, drive them with wrk, parse its figures.

Every figure is a ratio against a baseline measured in the same run with the same load tool,
because this machine is shared and absolute times drift."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ADMIN_KEY = "bench-admin-key-0123456789"
READY_TIMEOUT_S = 120  # first start runs initdb for the embedded database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def wait_workers(url: str, proc: subprocess.Popen[bytes], workers: int) -> None:
    """Until `workers` different workers have answered `url` (/readyz, a new connection each
    time: the kernel picks a worker per connection), so that a measurement does not start on
    the first worker alone while the others still restore their engines."""
    seen: set[str] = set()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while len(seen) < workers:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url}: {len(seen)} of {workers} workers ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                seen.add(json.loads(r.read())["cluster"]["worker"])
        except (OSError, KeyError, TypeError, ValueError):
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], grace_s: float = 60) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within `grace_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@contextmanager
def gateway(config: Path, env_extra: dict[str, str] | None = None,
            data_dir: Path | None = None, workers: int = 1) -> Iterator[str]:
    """The real gateway (`dni-gateway serve`) on the embedded database; yields its base URL."""
    with gateway_process(config, env_extra, data_dir, workers) as (base, _):
        yield base


@contextmanager
def gateway_process(config: Path, env_extra: dict[str, str] | None = None,
                    data_dir: Path | None = None, workers: int = 1
                    ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`gateway`, yielding the process too (for its CPU time). Settings are production's
    (the Docker image logs JSON at info) but for the swap rate limit: wrk's connections all
    come from 127.0.0.1, and the default 120 a minute would turn nearly every request into a
    rate-limited answer (the site number, no session, nothing for the writer)."""
    port = free_port()
    data = data_dir or Path(tempfile.mkdtemp(prefix="dni-bench-"))
    data.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DNI_DATA_DIR=str(data), DNI_PORT=str(port), DNI_ADMIN_KEY=ADMIN_KEY,
               DNI_LOG_LEVEL="info", DNI_LOG_FORMAT="json", DNI_SWAP_RATE="1000000")
    env.update(env_extra or {})
    log = open(data / "gateway.log", "ab")  # noqa: SIM115 - closed in finally
    argv = [PY, "-m", "gateway", "serve", "--config", str(config)]
    if workers > 1:  # a supervisor and `workers` processes sharing the ports
        argv += ["--workers", str(workers)]
    proc = subprocess.Popen(argv, env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + "/readyz", proc)
        if workers > 1:
            wait_workers(base + "/readyz", proc, workers)
        yield base, proc
    finally:
        stop(proc)
        log.close()
        print(f"(gateway log: {data / 'gateway.log'})", file=sys.stderr)


@contextmanager
def server(argv: Callable[[int], list[str]], ready_path: str = "/healthz"
           ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A baseline server process, `argv(port)` listening on loopback; yields its base URL and
    the process."""
    port = free_port()
    proc = subprocess.Popen(argv(port), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + ready_path, proc)
        yield base, proc
    finally:
        stop(proc)


@contextmanager
def bare(kind: str) -> Iterator[str]:
    """The baseline: a bare aiohttp handler on uvloop returning a canned answer."""
    with server(lambda port: [PY, str(ROOT / "bench" / "bare_server.py"), kind, str(port)]
                ) as (base, _):
        yield base


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc). Less sensitive than
    requests/s to what else the shared machine runs at the time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: Path, seconds: int, connections: int,
        threads: int = 1) -> dict[str, float]:
    """Run wrk; return requests/s, requests done, non-2xx count and socket errors."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
         str(script), url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "requests": float(done.group(1)) if done else 0.0,
            "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
            "socket_errors": float(sum(int(x) for x in errors.groups())) if errors else 0.0}


def post_json(url: str, doc: object, headers: dict[str, str] | None = None) -> object:
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def pool_number(i: int) -> str:
    """The i-th tracking number of the bench pools (valid US numbers for phonenumbers)."""
    return f"+1415230{i:04d}"


def pool_config(pool: int, origins: tuple[str, ...] = (), forward: str = "+18005550100") -> Path:
    """A site config file with one Google Ads pool of `pool` numbers."""
    numbers = ", ".join(f'"{pool_number(i)}"' for i in range(pool))
    allowed = ", ".join(f'"{o}"' for o in origins)
    path = Path(tempfile.mkdtemp(prefix="dni-bench-cfg-")) / "sites.toml"
    path.write_text(f'''[[sites]]
key = "bench"
name = "Bench"
swap_targets = ["{forward}"]
allowed_origins = [{allowed}]
  [[sites.sources]]
  name = "Google Ads"
  kind = "online"
  match = {{ gclid = true }}
  forward_to = "{forward}"
  numbers = [{numbers}]
''')
    return path


async def seed_sessions(url: str, now: float, count: int, number_of: Callable[[int], str],
                        seed: int) -> None:
    """`count` live sessions written straight into PostgreSQL (the loader restores them):
    session i is shown `number_of(i)`, started 1-25 min ago, active up to 5 min after."""
    import random

    import asyncpg

    rng = random.Random(seed)
    cols: list[list[object]] = [[] for _ in range(7)]
    for i in range(count):
        started = now - rng.uniform(60, 1500)
        row = (f"s_bench{i:07d}", f"v_bench{i:07d}", "bench", "Google Ads", number_of(i),
               started, min(now - 1, started + rng.uniform(0, 300)))
        for col, value in zip(cols, row, strict=True):
            col.append(value)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO sessions (id, visitor, site, source, number, started_at, last_activity)"
            " SELECT u.id, u.v, u.site, u.src, u.num, to_timestamp(u.s), to_timestamp(u.l)"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
            " $6::float8[], $7::float8[]) AS u(id, v, site, src, num, s, l)", *cols)
    finally:
        await conn.close()
