"""`dni-gateway report accuracy`: the accuracy report in the terminal.

Talks to the database directly, like `dni-gateway migrate` (DATABASE_URL, or the embedded server
in DNI_DATA_DIR when it is unset), reads the stored configuration and prints, per source, the
figures of `gateway.store.reports.accuracy_report` as a table (or JSON, or CSV).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

DEFAULT_PERIOD_S = 7 * 86_400.0  # the same default as the API: the last 7 days


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(fmt: str) -> Callable[[Any], str]:
    return lambda x: "-" if x is None else format(x, fmt)


# The online table: (heading, field, format); shares print as percentages.
COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("source", "source", str),
    ("visitors/day", "daily_visitors", _num(".0f")),
    ("pool", "pool_size", str),
    ("guide", "guideline_pool", str),
    ("peak/h", "peak_hour_sessions", _num(".1f")),
    ("hold min", "mean_reservation_s", lambda s: f"{s / 60:.1f}"),
    ("erlangs", "offered_load_erlangs", _num(".2f")),
    ("shared", "shared_share", _pct),
    ("erlang B", "erlang_b_blocking", _pct),
    ("calls", "calls", str),
    ("single", "single_candidate_share", _pct),
    ("mean lk", "mean_likelihood", _num(".2f")),
    ("<thr", "below_threshold_share", _pct),
    ("rec", "recommended_pool", str),
    ("acc now", "predicted_accuracy_now", _pct),
    ("acc rec", "predicted_accuracy_at_recommended", _pct),
    ("verdict", "verdict", str),
    ("change", "change", lambda c: f"{c:+d}" if c else "0"),
)
TEXT_COLUMNS = ("source", "verdict")  # left-aligned; figures are right-aligned


def add_parser(subparsers: Any) -> None:
    """Register `report accuracy` on the `dni-gateway` command's subparsers."""
    report = subparsers.add_parser("report", help="reports from the stored traffic")
    kinds = report.add_subparsers(dest="report", required=True)
    acc = kinds.add_parser("accuracy", help="per source: more numbers, fewer, or just right")
    acc.add_argument("--site", help="site key (default: every site)")
    acc.add_argument("--from", dest="since", type=when, help="start: ISO 8601 or epoch seconds "
                     "(default: 7 days before --to)")
    acc.add_argument("--to", dest="until", type=when, help="end: ISO 8601 or epoch seconds "
                     "(default: now)")
    acc.add_argument("--threshold", type=float, default=0.9,
                     help="likelihood below which a call is not confident (default 0.9)")
    acc.add_argument("--target", type=float, default=0.02,
                     help="largest predicted sharing at the peak hour (default 0.02)")
    acc.add_argument("--no-replay", dest="replay", action="store_false",
                     help="skip the replay (no predicted accuracy; faster)")
    acc.add_argument("--format", choices=("table", "json", "csv"), default="table")


def when(raw: str) -> float:
    """An argparse type: epoch seconds or an ISO 8601 date/time (UTC when no offset)."""
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ISO 8601 or epoch seconds, got {raw!r}"
                                         ) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def run(args: argparse.Namespace) -> int:
    """Compute the report from the database and print it; 2 for invalid arguments."""
    from gateway.store.reports import ReportError

    until = time.time() if args.until is None else args.until
    since = until - DEFAULT_PERIOD_S if args.since is None else args.since
    try:
        report = asyncio.run(_compute(args, since, until))
    except ReportError as exc:
        print(f"dni-gateway report: {exc.field}: {exc.message}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(report, indent=2))
    elif args.format == "csv":
        from gateway.web.reports import csv_text

        print(csv_text(report), end="")
    else:
        print(table(report))
    return 0


async def _compute(args: argparse.Namespace, since: float, until: float) -> dict[str, Any]:
    from gateway.settings import from_env
    from gateway.store.config_repo import load_config
    from gateway.store.db import configured_pool
    from gateway.store.reports import accuracy_report

    async with configured_pool(from_env()) as pool:
        async with pool.acquire() as conn:
            config = await load_config(conn)
        return await accuracy_report(pool, config, site=args.site, since=since, until=until,
                                     threshold=args.threshold, target=args.target,
                                     replay=args.replay)


# ---- the table ---------------------------------------------------------------------------------


def table(report: Mapping[str, Any]) -> str:
    """The report as aligned text: a header line, the online table, reasons, offline lines."""
    rows = report["sources"]
    online = [r for r in rows if r["kind"] == "online"]
    offline = [r for r in rows if r["kind"] == "offline"]
    lines = [_heading(report)]
    if online:
        lines += ["", *_grid(online)]
        lines += ["", *(f"  {r['site']}/{r['source']}: {r['reason']}" for r in online)]
    if offline:
        lines += ["", "offline sources:"]
        lines += [_offline_line(r) for r in offline]
    if not rows:
        lines.append("no sources configured")
    return "\n".join(lines)


def _heading(report: Mapping[str, Any]) -> str:
    span = f"{_date(report['from'])} to {_date(report['to'])}"
    site = report["site"] or "every site"
    return (f"accuracy report: {site}, {span} (threshold {report['threshold']:g}, target "
            f"sharing {100 * report['target']:g}% at the peak hour)")


def _date(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _grid(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cells = [[h for h, _, _ in COLUMNS]]
    cells += [[fmt(r.get(key)) for _, key, fmt in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return ["  ".join(c.ljust(w) if key in TEXT_COLUMNS else c.rjust(w)
                      for c, w, (_, key, _) in zip(row, widths, COLUMNS, strict=True)).rstrip()
            for row in cells]


def _offline_line(r: Mapping[str, Any]) -> str:
    per = ", ".join(f"{n} {k}" for n, k in r["calls_per_number"].items()) or "no numbers"
    unused = ", ".join(r["unused_numbers"]) or "none"
    return f"  {r['site']}/{r['source']}: {r['calls']} calls ({per}); unused: {unused}"
