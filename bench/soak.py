"""Resilience soak: steady mixed traffic (swaps, events, webhook calls, SIP INVITEs) against a
real gateway process on a real PostgreSQL, with faults injected on the way, then a check that
nothing was lost.

Phases (each `--phase-seconds` long, default 120; the CI test runs them for a few seconds):
  steady     mixed load, no fault
  pg-down    PostgreSQL stopped for the phase, then restarted: swaps and calls keep being
             answered; everything reaches the database after it returns
  kill       the gateway is SIGKILLed mid-phase and restarted: no call record is lost (spool),
             visitors flushed before the kill keep their numbers
  spool-bad  the spool directory is swapped for a plain file while the gateway runs, so every
             new spool segment fails (as a full or read-only disk would, and as root cannot
             bypass): calls are still forwarded, the error is logged (spool_write_failed) and
             counted (dni_writer_spool_errors); then the directory comes back
  slow-db    every byte to PostgreSQL goes through a proxy adding latency: the call answer
             stays within its budget

Every INVITE must get its 302 (one still unanswered 3 s after its phase is an error, as is
any other final answer), every webhook its <Dial>, every swap and event its answer; the kill
phase counts the requests sent while the process was down apart.

At the end: every visit's session and every answered call is in PostgreSQL exactly once, the
writer queue is drained. Memory: RSS of the gateway process,
sampled each second through the steady phase after a warm-up of `--warmup-seconds`, is
reported at start, end and max, beside the sessions the engine gained meanwhile: the engine
keeps every session for returning visitors by design, so RSS grows with them; growth beyond
MEMORY_KIB_PER_SESSION per session added is a leak. The exit status is 0 only when nothing
was lost, no phase had an error and memory stayed flat.

Run: .venv/bin/python -m bench.soak [--phase-seconds 120] [--rate 40]  (5 phases: 10 min)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
from twilio.request_validator import RequestValidator

from bench import harness
from tests import pg

TOKEN = "soak-twilio-token"
PUBLIC = "http://gateway.soak"
CALL_BUDGET_S = 0.5  # a call answer slower than this counts against the slow-db phase
# Added to every chunk each way: a 200 ms round trip, slow enough that a call waiting on one
# query would miss its budget, fast enough that the gateway can still start through it.
SLOW_DB_DELAY_S = 0.1
# RSS growth per session the engine gained over the steady phase, beyond which memory is not
# flat: a session costs ~0.5 KiB in the engine (bench_engine, tracemalloc), its events and the
# calls made meanwhile add to it, and a leak of a request's worth per request would show as
# many KiB per session.
MEMORY_KIB_PER_SESSION = 4.0
SIP_SETTLE_S = 3.0  # an INVITE unanswered this long after its phase is an error
KILL_WINDOW_S = 1.0  # > the 200 ms flush interval plus a flush's own time under load
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def config_text(numbers: int = 60) -> str:
    nums = ", ".join(f'"+1415230{i:04d}"' for i in range(numbers))
    return f'''[[sites]]
key = "soak"
name = "Soak"
swap_targets = ["+18005550100"]
allowed_origins = ["https://soak.test"]
  [[sites.sources]]
  name = "Google Ads"
  kind = "online"
  match = {{ gclid = true }}
  forward_to = "+18005550100"
  numbers = [{nums}]
  [[sites.sources]]
  name = "Billboard"
  kind = "offline"
  forward_to = "+18005550100"
  numbers = ["+14159990001"]
'''


@dataclass
class Tally:
    visits: dict[str, tuple[str, str]] = field(default_factory=dict)  # session -> (visitor, no.)
    answered_at: dict[str, float] = field(default_factory=dict)  # session -> monotonic time
    killed_at: float | None = None
    calls: set[str] = field(default_factory=set)  # answered with <Dial> or 302
    errors: list[str] = field(default_factory=list)
    call_latency: list[float] = field(default_factory=list)
    sent: int = 0


class Gateway:
    """The gateway as a real process that can be killed and restarted on the same data."""

    def __init__(self, config: Path, data: Path, db: str, sip_port: int) -> None:
        self.config, self.data, self.db, self.sip_port = config, data, db, sip_port
        self.port = harness.free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data / "gateway.log"

    def start(self, db: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(DATABASE_URL=db or self.db, DNI_DATA_DIR=str(self.data),
                   DNI_PORT=str(self.port), DNI_ADMIN_KEY=harness.ADMIN_KEY,
                   DNI_TWILIO_AUTH_TOKEN=TOKEN, DNI_PUBLIC_URL=PUBLIC, DNI_LOG_FORMAT="json",
                   DNI_SIP_PORT=str(self.sip_port), DNI_SIP_HOST="127.0.0.1",
                   DNI_SIP_TRUNKS="127.0.0.1/32", DNI_SIP_TERMINATION="trunk.soak",
                   DNI_SWAP_RATE="1000000")

        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [harness.PY, "-m", "gateway", "serve", "--config", str(self.config)], env=env,
            cwd=harness.ROOT, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        harness.wait_ready(self.base + "/healthz", self.proc)

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            harness.stop(self.proc)


class SipClient(asyncio.DatagramProtocol):
    """Sends INVITEs, ACKs every final response, records which calls got their 302."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.transport: asyncio.DatagramTransport | None = None
        self.started: dict[str, float] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def invite(self, call_id: str, to: str, target: tuple[str, int]) -> None:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        msg = (f"INVITE sip:{to}@127.0.0.1 SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{call_id}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:+14155550000@{host}>;tag=t{call_id}\r\n"
               f"To: <sip:{to}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
               f"Content-Length: 0\r\n\r\n")
        self.started[call_id] = time.perf_counter()
        self.transport.sendto(msg.encode(), target)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        head = data.decode(errors="replace").split("\r\n")
        status = int(head[0].split()[1]) if head[0].startswith("SIP/2.0") else 0
        if status < 200:
            return
        fields = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
        call_id = fields.get("call-id", "")
        started = self.started.pop(call_id, None)
        if started is not None:
            if status == 302:
                self.tally.calls.add(call_id)
                self.tally.call_latency.append(time.perf_counter() - started)
            else:
                self.tally.errors.append(f"sip {status}")
        ack = (f"ACK {head[0] and 'sip:x@127.0.0.1'} SIP/2.0\r\nVia: {fields.get('via', '')}\r\n"
               f"Max-Forwards: 70\r\nFrom: {fields.get('from', '')}\r\nTo: {fields.get('to', '')}"
               f"\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
        assert self.transport is not None
        self.transport.sendto(ack.encode(), addr)


class Load:
    """Open-loop mixed traffic at `rate` operations per second."""

    def __init__(self, gw: Gateway, tally: Tally, rate: int) -> None:
        self.gw, self.tally, self.rate = gw, tally, rate
        self.n = 0
        self.returning: list[str] = []
        self.sip: SipClient | None = None

    async def run(self, seconds: float, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        if self.sip is None:
            _, self.sip = await loop.create_datagram_endpoint(
                lambda: SipClient(self.tally), local_addr=("127.0.0.1", 0))
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            delay = start + i / self.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t = loop.create_task(self.one(session))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.settle_sip()

    async def settle_sip(self) -> None:
        """Wait (bounded) for the INVITEs in flight; any still unanswered is an error."""
        assert self.sip is not None
        for _ in range(int(SIP_SETTLE_S / 0.05)):
            if not self.sip.started:
                break
            await asyncio.sleep(0.05)
        self.tally.errors.extend("sip unanswered" for _ in self.sip.started)
        self.sip.started.clear()

    async def one(self, session: aiohttp.ClientSession) -> None:
        self.n += 1
        n, kind = self.n, self.n % 10
        try:
            if kind < 6:
                await self.swap(session, n)
            elif kind < 8:
                await self.event(session)
            elif kind == 8:
                await self.webhook(session, n)
            else:
                assert self.sip is not None
                self.tally.sent += 1
                self.sip.invite(f"soak-sip-{n}", self.some_number(), ("127.0.0.1",
                                                                       self.gw.sip_port))
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.tally.errors.append(f"{kind}: {type(exc).__name__}")

    def some_number(self) -> str:
        if not self.tally.visits:
            return "+14159990001"
        session = next(reversed(self.tally.visits))
        return self.tally.visits[session][1]

    async def swap(self, session: aiohttp.ClientSession, n: int) -> None:
        visitor = self.returning[n % len(self.returning)] if n % 4 == 0 and self.returning \
            else None
        body = {"site": "soak", "visitor": visitor, "url": f"https://soak.test/?gclid=g{n}",
                "referrer": "https://www.google.com/"}
        async with session.post(self.gw.base + "/v1/swap", json=body,
                                headers={"User-Agent": UA, "Origin": "https://soak.test"}) as r:
            if r.status != 200:
                self.tally.errors.append(f"swap {r.status}")
                return
            doc = await r.json()
        self.tally.visits[doc["session"]] = (doc["visitor"], doc["number"])
        self.tally.answered_at[doc["session"]] = time.monotonic()
        if visitor is None:
            self.returning.append(doc["visitor"])

    async def event(self, session: aiohttp.ClientSession) -> None:
        if not self.tally.visits:
            return
        s = next(reversed(self.tally.visits))
        async with session.post(f"{self.gw.base}/v1/sessions/{s}/events",
                                json={"kind": "ping"}) as r:
            if r.status not in (204, 404):  # 404: a session lost with a killed process
                self.tally.errors.append(f"event {r.status}")

    async def webhook(self, session: aiohttp.ClientSession, n: int) -> None:
        call_id = f"CAsoak{n:08d}"
        params = {"CallSid": call_id, "From": f"+1415555{n % 10000:04d}",
                  "To": self.some_number(), "CallStatus": "ringing", "Direction": "inbound"}
        sig = RequestValidator(TOKEN).compute_signature(PUBLIC + "/v1/voice/twilio", params)
        self.tally.sent += 1
        started = time.perf_counter()
        async with session.post(self.gw.base + "/v1/voice/twilio", data=urlencode(params),
                                headers={"X-Twilio-Signature": sig, "Content-Type":
                                         "application/x-www-form-urlencoded"}) as r:
            text = await r.text()
        self.tally.call_latency.append(time.perf_counter() - started)
        if r.status == 200 and "<Dial" in text:
            self.tally.calls.add(call_id)
        else:
            self.tally.errors.append(f"webhook {r.status}")


class SlowProxy:
    """TCP proxy to PostgreSQL's socket that delays every chunk by `delay` seconds."""

    def __init__(self, socket_path: str, delay: float) -> None:
        self.socket_path, self.delay = socket_path, delay
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_unix_connection(self.socket_path)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    await asyncio.sleep(self.delay)
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def pg_socket(url: str) -> str:
    host = url.split("host=", 1)[1].split("&", 1)[0]
    return f"{host}/.s.PGSQL.5432"


async def metric(gw: Gateway, session: aiohttp.ClientSession, name: str) -> float:
    async with session.get(gw.base + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


async def wait_drained(gw: Gateway, session: aiohttp.ClientSession, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(gw.base + "/readyz") as r:
                doc = await r.json()
            if r.status == 200 and doc["writer_queue"] == 0:
                return True
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    return False


async def verify(db: str, tally: Tally) -> dict[str, Any]:
    conn = await asyncpg.connect(db)
    try:
        sessions = {r["id"] for r in await conn.fetch("SELECT id FROM sessions")}
        calls = {r["id"] for r in await conn.fetch("SELECT id FROM calls")}
        dup_events = await conn.fetchval(
            "SELECT count(*) FROM (SELECT session, at, kind FROM session_events"
            " GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
    finally:
        await conn.close()
    missing = set(tally.visits) - sessions
    # Sessions answered in the write-behind window before the SIGKILL were still in memory
    # (an answer in flight at the kill is read just after it, hence the window both sides):
    # by design only call records are spooled before answering (see README), so these are
    # the price of a swap path without a disk write. Counted apart from real losses.
    window = {s for s in missing if tally.killed_at is not None
              and abs(tally.answered_at[s] - tally.killed_at) <= KILL_WINDOW_S}
    return {"visits_answered": len(tally.visits),
            "visits_missing": len(missing - window),
            "visits_in_kill_window": len(window),
            "calls_answered": len(tally.calls),
            "calls_missing": sorted(tally.calls - calls)[:5],
            "calls_missing_count": len(tally.calls - calls),
            "duplicate_events": dup_events}


class Memory:
    """RSS of one gateway process, sampled every second after a warm-up, beside the number
    of sessions its engine holds (`dni_engine_sessions`)."""

    def __init__(self, gw: Gateway, http: aiohttp.ClientSession) -> None:
        self.gw, self.http, self.pid = gw, http, gw.pid()
        self.samples: list[int] = []
        self.sessions: list[float] = []

    async def sample(self, warmup_s: float) -> None:
        await asyncio.sleep(warmup_s)
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                sessions = await metric(self.gw, self.http, "dni_engine_sessions")
                self.samples.append(self.gw.rss_kib())
                self.sessions.append(sessions)
            await asyncio.sleep(1.0)

    def report(self) -> dict[str, Any]:
        assert self.gw.pid() == self.pid, "sampled across a restart"
        if len(self.samples) < 2:
            return {"rss_samples": len(self.samples)}
        grown = self.samples[-1] - self.samples[0]
        added = self.sessions[-1] - self.sessions[0]
        return {"rss_start_kib": self.samples[0], "rss_end_kib": self.samples[-1],
                "rss_max_kib": max(self.samples), "rss_samples": len(self.samples),
                "sessions_added": int(added),
                "kib_per_session_added": round(grown / added, 2) if added > 0 else None}


async def soak(phase_s: float, rate: int, out: Any = sys.stdout,
               warmup_s: float = 10.0) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="dni-soak-"))
    work.chmod(0o755)
    config = work / "sites.toml"
    config.write_text(config_text())
    server = pg.Restartable()
    report: dict[str, Any] = {"phases": {}}
    gw = Gateway(config, work / "data", await pg.create_database(server.url),
                 harness.free_port())
    (work / "data").mkdir()
    tally = Tally()
    load = Load(gw, tally, rate)

    def say(phase: str, **figures: Any) -> None:
        report["phases"][phase] = figures
        print(f"{phase:10s} " + "  ".join(f"{k}={v}" for k, v in figures.items()), file=out,
              flush=True)

    try:
        await asyncio.to_thread(gw.start)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            memory = Memory(gw, http)
            sampler = asyncio.create_task(memory.sample(warmup_s))
            try:
                await load.run(phase_s, http)
            finally:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            say("steady", errors=len(tally.errors))
            say("memory", **memory.report())

            errors_before = len(tally.errors)
            await asyncio.to_thread(server.stop)
            await load.run(phase_s, http)
            await asyncio.to_thread(server.start)
            drained = await wait_drained(gw, http, 60)
            say("pg-down", errors=len(tally.errors) - errors_before, drained_after=drained)

            errors_before = len(tally.errors)
            task = asyncio.create_task(load.run(phase_s, http))
            await asyncio.sleep(phase_s / 2)
            flushed = dict(tally.visits)
            await asyncio.sleep(0.5)  # past a flush: these visitors are in the database
            tally.killed_at = time.monotonic()
            gw.kill()
            await task
            killed_errors = len(tally.errors) - errors_before
            await asyncio.to_thread(gw.start)
            kept = await returning_keep_numbers(gw, http, flushed)
            say("kill", errors_while_down=killed_errors, visitors_checked=kept[1],
                visitors_kept_number=kept[0])

            spool = gw.data / "spool"
            spool.rename(gw.data / "spool.away")
            spool.write_text("not a directory")
            errors_before, calls_before = len(tally.errors), len(tally.calls)
            await load.run(phase_s, http)
            spool_errors = await metric(gw, http, "dni_writer_spool_errors")
            logged = "spool_write_failed" in gw.log.read_text()
            spool.unlink()
            (gw.data / "spool.away").rename(spool)
            say("spool-bad", errors=len(tally.errors) - errors_before,
                calls_forwarded=len(tally.calls) - calls_before, spool_errors=spool_errors,
                logged=logged)
            await asyncio.to_thread(gw.stop)

            proxy = SlowProxy(pg_socket(gw.db), delay=SLOW_DB_DELAY_S)
            await proxy.start()
            slow_db = gw.db.split("?")[0].replace("postgresql://postgres:@/",
                                                   f"postgresql://postgres@127.0.0.1:"
                                                   f"{proxy.port}/")
            await asyncio.to_thread(gw.start, slow_db)
            tally.call_latency.clear()
            errors_before = len(tally.errors)
            await load.run(phase_s, http)
            lat = sorted(tally.call_latency) or [0.0]
            say("slow-db", errors=len(tally.errors) - errors_before,
                call_p50_ms=round(statistics.median(lat) * 1000, 1),
                call_p99_ms=round(lat[int(len(lat) * 0.99) - 1] * 1000, 1),
                budget_ms=CALL_BUDGET_S * 1000)
            drained = await wait_drained(gw, http, 90)
            await asyncio.to_thread(gw.stop)
            await proxy.stop()
            await asyncio.to_thread(gw.start)
            drained = await wait_drained(gw, http, 60) and drained
            await asyncio.to_thread(gw.stop)
        report["final"] = {**await verify(gw.db, tally), "writer_drained": drained,
                           "errors": tally.errors[:10]}
        print("final     " + json.dumps(report["final"]), file=out, flush=True)
    finally:
        if load.sip is not None and load.sip.transport is not None:
            load.sip.transport.close()
        gw.stop()
        server.remove()
    return report


async def returning_keep_numbers(gw: Gateway, http: aiohttp.ClientSession,
                                 before: dict[str, tuple[str, str]]) -> tuple[int, int]:
    """Visitors seen before the kill come back: how many are shown the same number."""
    sample = list(before.values())[-20:]
    kept = 0
    for visitor, number in sample:
        body = {"site": "soak", "visitor": visitor, "url": "https://soak.test/?gclid=back",
                "referrer": None}
        async with http.post(gw.base + "/v1/swap", json=body,
                             headers={"User-Agent": UA, "Origin": "https://soak.test"}) as r:
            if r.status == 200 and (await r.json())["number"] == number:
                kept += 1
    return kept, len(sample)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--phase-seconds", type=float, default=120)
    p.add_argument("--rate", type=int, default=40)
    p.add_argument("--warmup-seconds", type=float, default=30,
                   help="load before the first memory sample (imports, caches, pools)")
    args = p.parse_args()
    report = asyncio.run(soak(args.phase_seconds, args.rate, warmup_s=args.warmup_seconds))
    final = report["final"]
    ok = (final["visits_missing"] == 0 and final["calls_missing_count"] == 0
          and final["duplicate_events"] == 0 and final["writer_drained"])
    errors = sum(v for phase in report["phases"].values() for k, v in phase.items()
                 if k == "errors")
    per = report["phases"]["memory"].get("kib_per_session_added")
    flat = per is not None and per <= MEMORY_KIB_PER_SESSION
    print("result:", "nothing lost" if ok else "LOSS OR UNDRAINED QUEUE",
          "| no errors" if errors == 0 else f"| {errors} ERRORS",
          f"| memory flat (<= {MEMORY_KIB_PER_SESSION} KiB per session added)" if flat
          else "| MEMORY GREW MORE THAN THE SESSIONS EXPLAIN (or too few samples)")
    raise SystemExit(0 if ok and errors == 0 and flat else 1)


if __name__ == "__main__":
    main()
