"""Swap requests per second through the full HTTP stack against a bare aiohttp handler that
returns the same JSON, same load tool (wrk), same run. Target: ratio >= 0.7.

The baseline is what a minimal real service would do on the same stack (aiohttp on uvloop, no
access log): read and parse the JSON body, answer the same JSON, serialised the same way
(orjson), with the same Content-Type and Cache-Control. The gateway runs with production's
settings but for the swap rate limit (see `harness.gateway_process`). The two are measured in
alternating rounds, so both see the same drift of this shared machine; between rounds the
gateway's write-behind queue is let empty, so its Postgres work does not land on the
baseline's turn. Besides requests/s, each round prints the server process's CPU time per
request (user + system), which other load on the machine disturbs less.

Run: .venv/bin/python -m bench.bench_swap_http [--seconds 5] [--rounds 3] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
import urllib.request
from pathlib import Path

import orjson
from aiohttp import web

from bench import harness

POOL = 200  # numbers in the bench pool: many live sessions share, as a busy site's would
WARMUP_S = 2
SETTLE_S = 10.0  # bound on waiting for the gateway's writer queue to empty between rounds
BARE_ANSWER = {"visitor": "v_0123456789abcdefghijkl", "session": "s_0123456789abcdefghijkl",
               "source": "Google Ads", "number": "+14155550101", "formatted": "(415) 555-0101",
               "replaces": ["+18005550100"]}
BARE_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}


def write_config() -> Path:
    return harness.pool_config(POOL, origins=("https://bench.test",))


async def bare_swap(request: web.Request) -> web.Response:
    """The baseline handler: parse the body, answer the same JSON the same way."""
    doc = json.loads(await request.read())
    if not isinstance(doc, dict):
        raise web.HTTPBadRequest
    answer = {**BARE_ANSWER, "visitor": doc.get("visitor") or BARE_ANSWER["visitor"]}
    return web.Response(body=orjson.dumps(answer), headers=BARE_HEADERS)


async def bare_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def serve_bare(port: int) -> None:
    import uvloop

    app = web.Application()
    app.router.add_post("/v1/swap", bare_swap)
    app.router.add_get("/healthz", bare_health)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def measure(url: str, pid: int, seconds: int, connections: int) -> dict[str, float]:
    script = harness.ROOT / "bench" / "swap.lua"
    before = harness.cpu_seconds(pid)
    out = harness.wrk(url, script, seconds, connections)
    out["cpu_us"] = 1e6 * (harness.cpu_seconds(pid) - before) / max(out["requests"], 1.0)
    return out


def scrape(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        return str(r.read().decode())


def settle(base: str) -> None:
    """Wait (bounded) until the gateway's write-behind queue is empty."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        depth = re.search(r"^dni_writer_queue_depth ([\d.e+]+)$", scrape(base), re.M)
        if depth is not None and float(depth.group(1)) == 0.0:
            return
        time.sleep(0.1)


def outcomes(base: str) -> dict[str, int]:
    """Swap answers by outcome, from the gateway's own metrics."""
    return {m.group(1): int(float(m.group(2))) for m in re.finditer(
        r'^dni_swaps_total\{outcome="(\w+)",site="bench"\} ([\d.e+]+)$', scrape(base), re.M)}


def row(name: str, r: dict[str, float]) -> str:
    return (f"{name:8s} {r['rps']:8.0f} req/s  {r['cpu_us']:6.1f} CPU-us/req  "
            f"non-2xx {r['non2xx']:.0f}  socket errors {r['socket_errors']:.0f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=int, default=5, help="length of each measured wrk run")
    p.add_argument("--rounds", type=int, default=3, help="alternating bare/gateway rounds")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return
    print("gateway settings: production defaults (JSON logs at info) except "
          "DNI_SWAP_RATE=1000000 (every wrk connection is one client, 127.0.0.1)")
    bare_cmd = [harness.PY, "-m", "bench.bench_swap_http", "--serve-bare"]
    ratios, cpu_ratios = [], []
    with harness.server(lambda port: [*bare_cmd, str(port)]) as (bare_url, bare_proc), \
            harness.gateway_process(write_config()) as (gw_url, gw_proc):
        for url in (bare_url, gw_url):
            harness.wrk(url + "/v1/swap", harness.ROOT / "bench" / "swap.lua", WARMUP_S,
                        args.connections)
        settle(gw_url)
        for n in range(1, args.rounds + 1):
            bare = measure(bare_url + "/v1/swap", bare_proc.pid, args.seconds, args.connections)
            full = measure(gw_url + "/v1/swap", gw_proc.pid, args.seconds, args.connections)
            settle(gw_url)
            ratios.append(full["rps"] / bare["rps"])
            cpu_ratios.append(bare["cpu_us"] / full["cpu_us"])
            print(f"round {n}: {row('bare', bare)}\n         {row('gateway', full)}\n"
                  f"         ratio gateway/bare {ratios[-1]:.2f}  "
                  f"(CPU per request, bare/gateway {cpu_ratios[-1]:.2f})", flush=True)
        print(f"gateway swap outcomes: {outcomes(gw_url)}")
    print(f"ratio gateway/bare, median of {len(ratios)}: {statistics.median(ratios):.2f}  "
          f"(target >= 0.70; CPU per request bare/gateway {statistics.median(cpu_ratios):.2f})")


if __name__ == "__main__":
    main()
