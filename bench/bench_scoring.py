"""Scoring benchmarks: `score()` over 1,000 candidates, and a simulated week of traffic.

Run: `.venv/bin/python bench/bench_scoring.py`. Prints figures measured in this run:
- score() over 1,000 timelines (issue 6: engine.call with 1,000 candidates well under 1 ms);
- engine.call() itself on a number shown to 1,000 sessions;
- a one-week 1,000-visitors/day simulation through the real engine (under a minute), one pool
  size, and the per-call / per-visit times it measured.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scoring.features import CallContext, Timeline
from scoring.model import score
from scoring.simulate import run_scenario

AT = 1_704_067_200.0 + 30 * 86_400
CANDIDATES = 1000
REPEATS = 200


def timelines(n: int, seed: int = 1) -> list[Timeline]:
    """A realistic mix: most candidates ended hours to weeks ago, a few live, a few tapped."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        gap = rng.uniform(0, 60) if rng.random() < 0.02 else rng.expovariate(1 / (5 * 86_400))
        out.append(Timeline(
            session=f"s{i}", visitor=f"v{i}", assigned_at=AT - gap - 300, last_activity=AT - gap,
            live=gap < 1800, mobile=rng.random() < 0.6, shared=rng.random() < 0.5,
            pageviews=rng.randint(1, 8),
            last_click_to_call=AT - rng.uniform(2, 60) if rng.random() < 0.01 else None,
            hidden_at=AT - gap + 1 if rng.random() < 0.5 else None,
            caller_matches=1 if rng.random() < 0.001 else 0,
            visitor_sessions=2 if rng.random() < 0.2 else 1,
        ))
    return out


def bench_score() -> None:
    tl = timelines(CANDIDATES)
    ctx = CallContext(at=AT, caller="+16502000001", idle_timeout=1800.0)
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        score(ctx, tl)
        samples.append(time.perf_counter() - started)
    print(f"score() over {CANDIDATES} timelines: median {1e6 * statistics.median(samples):.0f} us,"
          f" p95 {1e6 * sorted(samples)[int(0.95 * REPEATS)]:.0f} us (budget: well under 1000 us)")


def bench_engine_call() -> None:
    """engine.call() on a number shown to 1,000 sessions (one-number pool), real engine."""
    from gateway.engine import Engine

    config = {"sites": [{"key": "b", "name": "B", "swap_targets": ["+18005550100"],
                         "allowed_origins": [], "sources": [{
                             "name": "Google Ads", "kind": "online", "match": {"gclid": True},
                             "forward_to": "+18005550100", "numbers": ["+14152000001"]}]}]}
    engine = Engine.from_config(config, seed=1)
    rng = random.Random(2)
    start = AT - 20 * 86_400
    for i in range(CANDIDATES):
        at = start + i * 20 * 86_400 / CANDIDATES
        v = engine.visit(site="b", url="https://b.test/?gclid=x", referrer=None,
                         user_agent="Mozilla/5.0 (iPhone) Mobile" if rng.random() < 0.6 else
                         "Mozilla/5.0 (Windows NT 10.0)", visitor=None, at=at)
        assert v.session is not None
        engine.activity(session=v.session, kind="ping", at=at + 20)
    samples = []
    for k in range(REPEATS):
        started = time.perf_counter()
        c = engine.call(to="+14152000001", caller=f"+1650200{k:04d}", call_id=f"b{k}",
                        at=AT + k)
        samples.append(time.perf_counter() - started)
    assert len(c.candidates) >= 100
    print(f"engine.call() with {CANDIDATES} candidates: median "
          f"{1e6 * statistics.median(samples):.0f} us (issue 6 budget: under 1000 us)")


def bench_week() -> None:
    started = time.perf_counter()
    rep = run_scenario("default", 20, days=7, seed=1, daily_visitors=1000.0)
    took = time.perf_counter() - started
    row = rep.rows[0]
    print(f"one week at 1,000 visitors/day, pool 1/20: {took:.1f} s (budget 60 s); "
          f"{rep.sessions} sessions, {row.calls + row.noise_calls} calls; "
          f"engine.visit {row.visit_us:.0f} us, engine.call {row.call_us:.0f} us on average")


if __name__ == "__main__":
    bench_score()
    bench_engine_call()
    bench_week()
