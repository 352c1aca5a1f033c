"""The accuracy report API (admin key): `GET /v1/reports/accuracy?site=&from=&to=&threshold=
&target=&replay=&format=`, per source "more numbers", "fewer numbers" or "just right" with the
figures behind it (`gateway.store.reports`).

JSON by default; CSV (one row per source, lists spread over numbered columns) with
`Accept: text/csv` or `format=csv`. Defaults: the last 7 days, threshold 0.9, target 2%.
`csv_text` is shared with `dni-gateway report accuracy --format csv`.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.store import reports
from gateway.store.config_repo import load_config
from gateway.web import validate
from gateway.web.auth import require_admin
from gateway.web.calls import parse_time
from gateway.web.errors import ApiError
from gateway.web.keys import STATE

DEFAULT_PERIOD_S = 7 * 86_400.0  # issue 7: the last 7 days unless `from` says otherwise
MAX_PERIOD_S = 366 * 86_400.0  # a year of aggregates is the longest question worth a request
FORMATS = ("json", "csv")
CSV_TYPE = "text/csv"
ONLINE_COLUMNS = (
    "daily_visitors", "pool_size", "guideline_pool", "ratio_vs_guideline", "peak_hour",
    "peak_hour_sessions", "mean_reservation_s", "offered_load_erlangs", "shared_share",
    "peak_blocked_share", "erlang_b_blocking", "calls", "single_candidate_share",
    "mean_likelihood", "below_threshold_share", "recommended_pool", "recommended_blocking",
    "predicted_accuracy_now", "predicted_accuracy_at_recommended", "verdict", "change", "reason",
)
CSV_COLUMNS = (
    "site", "source", "kind", "days", *ONLINE_COLUMNS,
    *(f"likelihood_{i / 10:.1f}_{(i + 1) / 10:.1f}" for i in range(reports.HISTOGRAM_BINS)),
    *(f"reserved_h{h:02d}" for h in range(24)),
    "calls_per_number", "unused_numbers",
)


def report_params(request: web.Request) -> dict[str, Any]:
    """The query as accuracy_report's keyword arguments (422 naming the bad field)."""
    q = request.query
    until = parse_time(q.get("to"), "to")
    until = time.time() if until is None else until
    since = parse_time(q.get("from"), "from")
    since = until - DEFAULT_PERIOD_S if since is None else since
    if since >= until:
        raise ApiError(422, "from must be before to", field="from")
    if until - since > MAX_PERIOD_S:
        raise ApiError(422, f"the period is longer than {MAX_PERIOD_S / 86_400:.0f} days",
                       field="from")
    threshold = validate.query_float(request, "threshold")
    target = validate.query_float(request, "target")
    return {
        "site": q.get("site") or None, "since": since, "until": until,
        "threshold": reports.DEFAULT_THRESHOLD if threshold is None else threshold,
        "target": reports.DEFAULT_TARGET if target is None else target,
        "replay": _flag(q.get("replay"), "replay"),
    }


def _flag(raw: str | None, name: str) -> bool:
    if raw is None or raw.lower() in ("1", "true", "yes", ""):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(422, f"{name} must be true or false", field=name)


def wants_csv(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ApiError(422, f"format must be one of {', '.join(FORMATS)}", field="format")
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip() == CSV_TYPE for part in accept.split(","))


async def accuracy(request: web.Request) -> web.Response:
    require_admin(request)
    as_csv = wants_csv(request)
    params = report_params(request)
    state = request.app[STATE]
    if state.pool is None:
        raise ApiError(503, "database not ready")
    config: Any = state.engine.config if state.engine is not None else None
    if config is None:
        async with state.pool.acquire() as conn:
            config = await load_config(conn)
    try:
        report = await reports.accuracy_report(state.pool, config, **params)
    except reports.ReportError as exc:
        raise ApiError(exc.status, exc.message, field=exc.field) from None
    if as_csv:
        return web.Response(text=csv_text(report), content_type=CSV_TYPE,
                            headers={"Content-Disposition": "inline; filename=accuracy.csv"})
    return web.json_response(report)


def csv_text(report: Mapping[str, Any]) -> str:
    """The report's sources as CSV: one row per source, lists over numbered columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report["sources"]:
        writer.writerow(csv_row(row))
    return out.getvalue()


def csv_row(row: Mapping[str, Any]) -> list[Any]:
    histogram = row.get("likelihood_histogram") or [""] * reports.HISTOGRAM_BINS
    reserved = row.get("reserved_by_hour") or [""] * 24
    per_number = row.get("calls_per_number")
    numbers = " ".join(f"{n}:{k}" for n, k in per_number.items()) if per_number else ""
    return [
        row["site"], row["source"], row["kind"], row.get("days", ""),
        *(_cell(row.get(c)) for c in ONLINE_COLUMNS), *histogram, *reserved,
        numbers, " ".join(row.get("unused_numbers", [])),
    ]


def _cell(value: Any) -> Any:
    return "" if value is None else value


def routes() -> list[web.RouteDef]:
    return [web.get("/v1/reports/accuracy", accuracy)]
