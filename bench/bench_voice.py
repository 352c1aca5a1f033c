"""Voice webhook latency under a steady load, with 100,000 live sessions in the engine and
1,000 candidate sessions on the dialled number, against a bare aiohttp handler returning a
fixed TwiML string; same open-loop client, same run. Target: p50 within 3x of the bare handler,
no error, every call recorded.

Run: .venv/bin/python -m bench.bench_voice [--rate 100] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
from twilio.request_validator import RequestValidator

from bench import harness
from tests import pg

TOKEN = "bench-twilio-token"
PUBLIC = "http://gateway.bench"
POOL = 100
DIALLED = "+14152300000"
SESSIONS = 100_000
ON_DIALLED = 1_000


def write_config() -> Path:
    return harness.pool_config(POOL)


async def seed_sessions(url: str, now: float) -> None:
    """100,000 live sessions, 1,000 of them shown the dialled number (others spread evenly)."""
    await harness.seed_sessions(
        url, now, SESSIONS, lambda i: DIALLED if i < ON_DIALLED
        else harness.pool_number(1 + i % (POOL - 1)), seed=7)


def signed_call(i: int) -> tuple[bytes, dict[str, str]]:
    params = {"CallSid": f"CAbench{i:08d}", "AccountSid": "AC" + "0" * 32, "To": DIALLED,
              "From": f"+1415555{i % 10000:04d}", "CallStatus": "ringing",
              "Direction": "inbound", "ApiVersion": "2010-04-01"}
    sig = RequestValidator(TOKEN).compute_signature(PUBLIC + "/v1/voice/twilio", params)
    return urlencode(params).encode(), {"X-Twilio-Signature": sig,
                                         "Content-Type": "application/x-www-form-urlencoded"}


async def steady_load(url: str, rate: int, seconds: int, first: int) -> dict[str, float]:
    """Open loop: request i is sent at start + i/rate whatever the previous answers did."""
    calls = [signed_call(first + i) for i in range(rate * seconds)]
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(body: bytes, headers: dict[str, str]) -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    text = await r.text()
                    if r.status != 200 or "<Dial" not in text:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        tasks = []
        for i, (body, headers) in enumerate(calls):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, headers)))
        await asyncio.gather(*tasks)
    latencies.sort()
    return {"n": len(latencies), "errors": errors,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def engine_sessions(base: str) -> int:
    """Sessions the gateway's engine holds, from its /metrics (`dni_engine_sessions`)."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("dni_engine_sessions "):
                return int(float(line.split()[1]))
    return 0


async def candidates_scored(url: str) -> int:
    """How many candidate sessions the first recorded call was scored over."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT candidate_count FROM calls ORDER BY at LIMIT 1") or 0)
    finally:
        await conn.close()


async def count_calls(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        for _ in range(50):
            n = await conn.fetchval("SELECT count(*) FROM calls")
            if n:
                await asyncio.sleep(0.5)
                n2 = await conn.fetchval("SELECT count(*) FROM calls")
                if n2 == n:
                    return int(n)
            await asyncio.sleep(0.2)
        return int(await conn.fetchval("SELECT count(*) FROM calls"))
    finally:
        await conn.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=int, default=100)
    p.add_argument("--seconds", type=int, default=30)
    args = p.parse_args()
    server = pg.Restartable()
    admin = server.url
    db = asyncio.run(pg.create_database(admin))
    config = write_config()
    env = {"DATABASE_URL": db, "DNI_TWILIO_AUTH_TOKEN": TOKEN, "DNI_PUBLIC_URL": PUBLIC}
    try:
        with harness.gateway(config, env):  # first start: migrations and the config
            pass
        asyncio.run(seed_sessions(db, time.time()))
        with harness.bare("twiml") as base:
            asyncio.run(steady_load(base + "/v1/voice/twilio", args.rate, 2, 0))
            bare = asyncio.run(steady_load(base + "/v1/voice/twilio", args.rate, args.seconds,
                                           0))
        with harness.gateway(config, env) as base:
            held = engine_sessions(base)
            asyncio.run(steady_load(base + "/v1/voice/twilio", args.rate, 2, 10_000_000))
            full = asyncio.run(steady_load(base + "/v1/voice/twilio", args.rate, args.seconds,
                                           0))
            recorded = asyncio.run(count_calls(db))
            scored = asyncio.run(candidates_scored(db))
    finally:
        server.remove()
    expected = args.rate * args.seconds + args.rate * 2
    print(f"load: {args.rate} calls/s for {args.seconds} s; the engine held {held:,} sessions"
          f" ({SESSIONS:,} seeded live); a call was scored over {scored:,} candidates"
          f" ({ON_DIALLED:,} seeded on the dialled number)")
    for name, r in (("bare TwiML handler", bare), ("gateway webhook", full)):
        print(f"{name:20s}: p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
              f"  errors {r['errors']:.0f}/{r['n']:.0f}")
    ratio = full["p50_ms"] / bare["p50_ms"]
    ok = (ratio <= 3 and full["errors"] == 0 and recorded == expected
          and held >= SESSIONS and scored >= ON_DIALLED)
    print(f"p50 ratio gateway/bare: {ratio:.2f} (target <= 3)")
    print(f"calls recorded in Postgres: {recorded:,} of {expected:,} sent")
    print("result:", "pass" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
