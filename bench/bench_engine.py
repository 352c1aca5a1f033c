"""Engine benchmarks: visit throughput, memory per live session, call latency, restore time.

Run: .venv/bin/python bench/bench_engine.py [--quick]

Prints figures next to the issue's targets (>= 50,000 visits/s on one core, <= 1 KiB per live
session, engine.call() with 1,000 candidates < 1 ms, 1,000,000 sessions restored in a few
seconds). Nothing here asserts on time: the numbers are for the closing note and for spotting
regressions by eye. Everything runs in virtual time with a seeded engine.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from gateway.engine import Engine, SessionState

DESKTOP = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.0.0 Safari/537.36")
PHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.0.0 Mobile Safari/537.36")
AGENTS = (DESKTOP, PHONE, ANDROID)
POOL = 100  # numbers per online source in the throughput and restore runs

# (landing URL, referrer) of each channel, in roughly the proportions of the traffic model.
LANDINGS = (
    ("https://acme.test/plumbing?gclid=EAIaIQobChMI8fakeClickId&utm_source=google&utm_medium=cpc",
     "https://www.google.com/"),
    ("https://acme.test/", "https://www.google.com/"),
    ("https://acme.test/drains?msclkid=4f2c9a1b7e&utm_source=bing&utm_medium=cpc",
     "https://www.bing.com/"),
    ("https://acme.test/offer?utm_source=newsletter&utm_medium=email&utm_campaign=june", None),
    ("https://acme.test/", None),
    ("https://acme.test/about", "https://blog.example.org/best-plumbers"),
)


def config(pool: int = POOL, sources: tuple[str, ...] | None = None) -> dict[str, Any]:
    names = sources or ("Google Ads", "Google Organic", "Bing Ads", "Email", "Direct",
                        "Referral")
    base = 4155500000
    return {"sites": [{
        "key": "acme", "swap_targets": ["+18005550100"],
        "allowed_origins": ["https://acme.test"],
        "sources": [{"name": name, "kind": "online", "forward_to": "+18005550100",
                     "numbers": [f"+1{base + i * 1000 + k}" for k in range(pool)]}
                    for i, name in enumerate(names)],
    }]}


def visit_throughput(n: int, step: float = 6.0) -> None:
    """n page views, one every `step` virtual seconds: 60% new visitors landing, 40% a later
    page from one of the last 30 visitors (continuing their session, or returning), records
    drained every 1,000 as the writer would. At 6 s the pools run near capacity (600 numbers,
    1 per 20 daily visitors: the reference guideline); at 1 s about twice over capacity; at
    0.05 s some 60 live sessions share each number (a pathological, 50x undersized pool)."""
    rng = random.Random(1)
    engine = Engine.from_config(config(), seed=1)
    plan = []
    newcomers = 0
    for i in range(n):
        url, ref = LANDINGS[rng.randrange(len(LANDINGS))]
        back = rng.randrange(max(0, newcomers - 30), newcomers) if (
            newcomers and rng.random() < 0.4) else -1
        newcomers += back < 0
        plan.append((url, ref, AGENTS[i % 3], back, i * step))
    issued: list[str] = []
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    visit = engine.visit
    for i, (url, ref, ua, back, at) in enumerate(plan):
        v = visit(site="acme", url=url, referrer=ref, user_agent=ua,
                  visitor=issued[back] if back >= 0 else None, at=at)
        if back < 0:
            issued.append(v.visitor)
        if i % 1000 == 0:
            engine.drain()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = engine.pool_stats()
    print(f"visit throughput, a visit every {step:g} virtual s: {n / wall:,.0f} visits/s wall, "
          f"{n / cpu:,.0f}/s CPU ({cpu * 1e6 / n:.1f} us each; target >= 50,000/s: "
          f"{n / cpu / 50_000:.2f}x on CPU time)")
    print(f"  {n:,} visits -> {engine.sessions_count():,} sessions, "
          f"{sum(p.sharings for p in stats):,} sharings over 6 pools of {POOL}")


def memory_per_session(n: int) -> None:
    """tracemalloc over n live sessions (records drained as the writer would)."""
    engine = Engine.from_config(config(pool=1000), seed=2)
    url, ref = LANDINGS[0]
    engine.visit(site="acme", url=url, referrer=ref, user_agent=PHONE, at=0.0)  # warm caches
    engine.drain()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        engine.visit(site="acme", url=url, referrer=ref, user_agent=AGENTS[i % 3],
                     at=1.0 + i * 0.01)
        if i % 1000 == 0:
            engine.drain()
    engine.drain()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    live = engine.pool_stats(at=1.0 + n * 0.01)[0].live
    per = (after - before) / n
    print(f"memory per live session: {per:,.0f} bytes over {n:,} sessions ({live:,} live; "
          f"target <= 1,024: {per / 1024:.2f}x of budget)")


def call_latency(candidates: int, engines: int, calls: int) -> None:
    """engine.call() on a number shown to `candidates` sessions: cold (first call after the
    sessions changed) and warm (later calls; unchanged sessions reuse their timelines)."""
    cold: list[float] = []
    warm: list[float] = []
    for e in range(engines):
        engine = _engine_with_candidates(candidates, seed=e)
        call_at = candidates * 60.0 + 600.0
        for k in range(calls):
            started = time.process_time()
            result = engine.call(to="+14155500000", caller=f"+1415555{k % 10000:04d}",
                                 call_id=f"CA{e}-{k}", at=call_at + k)
            (cold if k == 0 else warm).append(time.process_time() - started)
        assert len(result.candidates) > 0
    print(f"engine.call() with {candidates:,} candidates (CPU time, scoring included): cold median "
          f"{statistics.median(cold) * 1e3:.3f} ms ({len(cold)} engines), warm median "
          f"{statistics.median(warm) * 1e3:.3f} ms, p99 "
          f"{_percentile(warm, 0.99) * 1e3:.3f} ms ({len(warm)} calls; target < 1 ms)")


def _engine_with_candidates(n: int, seed: int) -> Engine:
    engine = Engine.from_config(config(pool=1, sources=("Google Ads",)), seed=seed)
    url, ref = LANDINGS[0]
    for i in range(n):
        v = engine.visit(site="acme", url=url, referrer=ref, user_agent=AGENTS[i % 3],
                         at=i * 60.0)
        if i % 7 == 0 and v.session is not None:
            engine.activity(session=v.session, kind="ping", at=i * 60.0 + 20)
    engine.drain()
    return engine


def restore_time(n: int) -> None:
    """Engine.from_config + restore_sessions of n states over 30 days (states built before)."""
    rng = random.Random(3)
    names = ("Google Ads", "Google Organic", "Bing Ads", "Email", "Direct", "Referral")
    span = 30 * 86400.0
    states = []
    for i in range(n):
        start = span * i / n
        src = rng.randrange(len(names))
        visitor = f"v_r{rng.randrange(n * 6 // 10):020d}"
        number = f"+1{4155500000 + src * 1000 + rng.randrange(POOL)}"
        states.append(SessionState(
            f"s_r{i:021d}", visitor, "acme", names[src], number,
            start, start + rng.expovariate(1 / 150), rng.random() < 0.6, False,
            1 + int(rng.expovariate(1)), None, None))
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    engine = Engine.from_config(config(), seed=3)
    restored = engine.restore_sessions(states)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"restore: {restored:,} sessions in {wall:.2f} s wall, {cpu:.2f} s CPU "
          f"({restored / cpu:,.0f}/s; target: a few seconds for 1,000,000)")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    runs: list[Callable[[], None]] = [
        lambda: visit_throughput(200_000 // scale),
        lambda: visit_throughput(200_000 // scale, step=1.0),
        lambda: visit_throughput(50_000 // scale, step=0.05),
        lambda: memory_per_session(100_000 // scale),
        lambda: call_latency(1_000, 5, 201),
        lambda: restore_time(1_000_000 // scale),
    ]
    for run in runs:
        run()


if __name__ == "__main__":
    main()
