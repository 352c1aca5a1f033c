"""SIP redirect throughput: INVITE -> 302 -> ACK transactions per second, measured with SIPp at
increasing rates until calls fail, with 100,000 live sessions in the gateway's engine. In the
same run and with the same SIPp scenario: Kamailio (one child, a fixed 302 from sl_send_reply)
and a bare uvloop datagram handler returning a canned 302. Each step also prints the INVITEs
SIPp had to retransmit and the datagrams the kernel dropped at the server's socket (its
receive buffer full): drops at a server while the others pass at the same rate mean that server
fell behind, not SIPp.

`--workers 1,2` adds a column for `serve --workers 2` (both cores; SIPp then sends each call
from its own socket, `-t un`, so that the kernel spreads calls over the workers sharing the
port; SIPp, PostgreSQL and the workers share the machine's two cores).

Run: .venv/bin/python -m bench.bench_sip [--rates 1000,2000,4000] [--seconds 5] [--workers 1,2]
Needs Debian's sip-tester (sipp) and, for the Kamailio column, kamailio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import harness
from tests import pg

ROOT = harness.ROOT
POOL = 1000  # numbers: 100,000 live sessions spread 100 per number
SESSIONS = 100_000
FORWARD = "+18005550100"
# SIPp's socket cap (its default, 50,000, exceeds the open-file limit here and SIPp refuses to
# run with -t un): one socket per call lives for the call's few milliseconds.
MAX_SOCKETS = 10_000


def numbers() -> list[str]:
    return [harness.pool_number(i) for i in range(POOL)]


def write_config() -> Path:
    return harness.pool_config(POOL, forward=FORWARD)


async def seed(url: str, now: float) -> None:
    await harness.seed_sessions(url, now, SESSIONS, lambda i: harness.pool_number(i % POOL),
                                seed=11)


def scenario(work: Path) -> tuple[Path, Path]:
    text = (ROOT / "tests/data/sipp/invite_302.xml").read_text()
    sc = work / "invite_302.xml"
    sc.write_text(text.replace("{forward_digits}", FORWARD[1:]))
    rng = random.Random(5)
    inf = work / "calls.csv"
    inf.write_text("RANDOM\n" + "".join(f"{rng.choice(numbers())};+1415555{i:04d};\n"
                                         for i in range(10_000)))
    return sc, inf


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped so far at the socket bound to `port` on this host (its
    receive buffer was full: the server fell behind), from /proc/net/udp{,6}."""
    dropped = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    dropped += int(fields[-1])
    return dropped


def sipp_step(target: int, rate: int, seconds: int, sc: Path, inf: Path,
              transport: str = "u1") -> dict[str, float]:
    calls = rate * seconds
    drops = udp_drops(target)
    started = time.perf_counter()
    out = subprocess.run(
        ["sipp", "-sf", str(sc), "-inf", str(inf), "-t", transport, "-r", str(rate),
         "-m", str(calls), "-max_socket", str(MAX_SOCKETS), "-i", "127.0.0.1",
         "-l", str(rate * 4), "-nostdin", "-timeout", f"{seconds * 4 + 10}s", "-timeout_error",
         "-recv_timeout", "5000", "-max_recv_loops", "10000", f"127.0.0.1:{target}"],
        capture_output=True, text=True, check=False).stdout
    wall = time.perf_counter() - started

    def last(name: str) -> float:
        found = re.findall(rf"{name}\s+\|\s+\d+\s+\|\s+(\d+)", out)
        return float(found[-1]) if found else 0.0

    ok, failed = last("Successful call"), last("Failed call")
    return {"rate": rate, "ok": ok, "failed": failed, "achieved": ok / wall if wall else 0.0,
            "drops": float(udp_drops(target) - drops),
            "retrans": float(sum(int(x) for x in re.findall(r"INVITE ---------->\s+\d+\s+(\d+)",
                                                            out)))}


def climb(name: str, port: int, rates: list[int], seconds: int, sc: Path, inf: Path,
          transport: str = "u1") -> int:
    best = 0
    for rate in rates:
        r = sipp_step(port, rate, seconds, sc, inf, transport)
        # Passing means every call succeeded and the server kept pace with the offered rate
        # (SIPp's retransmissions can rescue a lagging server: that is not a pass).
        clean = r["failed"] == 0 and r["ok"] == rate * seconds and r["achieved"] >= 0.9 * rate
        print(f"  {name:9s} offered {rate:5d}/s: ok {r['ok']:7.0f} failed {r['failed']:5.0f}"
              f" achieved {r['achieved']:7.0f}/s retransmitted {r['retrans']:6.0f}"
              f" dropped {r['drops']:6.0f} {'pass' if clean else 'FAIL'}", flush=True)
        if not clean:
            break
        best = rate
    return best


@contextmanager
def kamailio(port: int) -> Iterator[bool]:
    if shutil.which("kamailio") is None:
        yield False
        return
    proc = subprocess.Popen(["kamailio", "-f", str(ROOT / "bench/kamailio.cfg"), "-D", "-E",
                             "-n", "1", "-l", f"udp:127.0.0.1:{port}", "-w", "/tmp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        yield proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def bare_sip(port: int) -> Iterator[None]:
    proc = subprocess.Popen([harness.PY, str(ROOT / "bench/bare_sip.py"), str(port)])
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rates", default="1000,2000,3000,4000,5000,6000,8000,10000")
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--workers", default="1",
                   help="gateway columns: `serve --workers N` for each N (comma-separated)")
    args = p.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    work = Path(tempfile.mkdtemp(prefix="dni-bench-sip-"))
    sc, inf = scenario(work)
    results: dict[str, int] = {}
    port = harness.free_port()
    with bare_sip(port):
        results["bare uvloop"] = climb("bare", port, rates, args.seconds, sc, inf)
    port = harness.free_port()
    with kamailio(port) as running:
        if running:
            results["kamailio"] = climb("kamailio", port, rates, args.seconds, sc, inf)
    server = pg.Restartable()
    try:
        db = asyncio.run(pg.create_database(server.url))
        config = write_config()
        sip_port = harness.free_port()
        env = {"DATABASE_URL": db, "DNI_SIP_PORT": str(sip_port), "DNI_SIP_HOST": "127.0.0.1",
               "DNI_SIP_TERMINATION": "trunk.example", "DNI_LOG_LEVEL": "warning"}
        with harness.gateway(config, env):
            pass
        asyncio.run(seed(db, time.time()))
        for n in (int(w) for w in args.workers.split(",")):
            # Several workers share the port (SO_REUSEPORT): the kernel picks a worker by the
            # peer's address, so SIPp sends each call from its own socket (-t un) to spread
            # them; a call's retransmissions and ACK come from that socket, to that worker.
            name, transport = ("gateway", "u1") if n == 1 else (f"gateway x{n}", "un")
            with harness.gateway(config, env, workers=n):
                results[name] = climb(name, sip_port, rates, args.seconds, sc, inf, transport)
    finally:
        server.remove()
    print(f"\nhighest rate with zero failed calls ({args.seconds} s per step, "
          f"{SESSIONS:,} live sessions in the gateway's engine):")
    for name, best in results.items():
        print(f"  {name:12s} {best:6d} transactions/s")


if __name__ == "__main__":
    main()
