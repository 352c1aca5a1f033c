"""Swap requests per second through the full HTTP stack against a bare aiohttp handler that
returns the same JSON, same load tool (wrk), same run. Target: ratio >= 0.7.

Run: .venv/bin/python bench/bench_swap_http.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import harness

POOL = 200  # numbers in the bench pool: many live sessions share, as a busy site's would


def write_config() -> Path:
    return harness.pool_config(POOL, origins=("https://bench.test",))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--connections", type=int, default=32)
    args = p.parse_args()
    script = harness.ROOT / "bench" / "swap.lua"
    with harness.bare("swap") as base:
        harness.wrk(base + "/v1/swap", script, 2, args.connections)  # warm-up
        bare = harness.wrk(base + "/v1/swap", script, args.seconds, args.connections)
    with harness.gateway(write_config()) as base:
        harness.wrk(base + "/v1/swap", script, 2, args.connections)  # warm-up
        full = harness.wrk(base + "/v1/swap", script, args.seconds, args.connections)
    print(f"bare aiohttp handler : {bare['rps']:9.0f} req/s  non-2xx {bare['non2xx']:.0f}")
    print(f"gateway /v1/swap     : {full['rps']:9.0f} req/s  non-2xx {full['non2xx']:.0f}"
          f"  socket errors {full['socket_errors']:.0f}")
    print(f"ratio gateway/bare   : {full['rps'] / bare['rps']:.2f}  (target >= 0.70)")


if __name__ == "__main__":
    main()
