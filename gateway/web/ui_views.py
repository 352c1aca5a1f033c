"""What the dashboard's templates show: formatting filters and the view data of each page.

Pure functions over the dicts the call API and the accuracy report return and the engine's
configuration, so they are tested without a browser. Times are shown in UTC (the server has no
idea of the reader's zone; every time carries the "UTC" mark and a machine-readable
`<time datetime>`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jinja2
import phonenumbers

from gateway.engine.config import Config, SourceConfig
from gateway.engine.rules import implicit_rules, rule_to_dict
from gateway.web import ui_charts
from gateway.web.reports import MAX_PERIOD_S

DAY_S = 86400
REPORT_DAYS = 7  # the accuracy report's default period: a whole week of daily patterns
# Dates the forms accept: the call API's time range (`calls.EARLIEST_S`..`LATEST_S`), so that
# "to" plus a day still is a date and a time the API takes.
EARLIEST_DAY = date(1970, 1, 1)
LATEST_DAY = date(9998, 12, 31)
# Confidence filter of the call log: (min, max) likelihood, max exclusive, as the API takes them.
CONFIDENCE: dict[str, tuple[float | None, float | None]] = {
    "high": (ui_charts.HIGH, None),
    "medium": (ui_charts.MEDIUM, ui_charts.HIGH),
    "low": (None, ui_charts.MEDIUM),
}
CONFIDENCE_LABELS = {"": "any", "high": "high (80% and up)", "medium": "medium (50-80%)",
                     "low": "low (under 50%)"}
TIMELINE_KINDS = (  # (session field, what the row says), in the order a visit happens
    ("started_at", "landed"),
    ("last_click_to_call", "clicked to call"),
    ("last_activity", "last activity"),
)
VERDICT_CLASS = {"more numbers": "more", "fewer numbers": "fewer", "just right": "right"}
# The accuracy report's figures in the order the page lists them: (key, label, format).
FIGURES = (
    ("days", "Days measured", "float"),
    ("sessions", "Sessions", "int"),
    ("daily_visitors", "Visitors a day", "float"),
    ("pool_size", "Numbers in the pool", "int"),
    ("guideline_pool", "Guideline pool (1 per 20 daily visitors)", "int"),
    ("recommended_pool", "Recommended pool", "int"),
    ("peak_hour", "Busiest hour", "hour"),
    ("peak_hour_sessions", "New sessions in the busiest hour", "float"),
    ("mean_reservation_s", "Mean reservation", "seconds"),
    ("offered_load_erlangs", "Offered load (Erlangs)", "float"),
    ("erlang_b_blocking", "Erlang B blocking at peak", "percent"),
    ("recommended_blocking", "Erlang B blocking at the recommended pool", "percent"),
    ("peak_blocked_share", "New visitors at peak who found the pool full", "percent"),
    ("shared_share", "Sessions on a shared number", "percent"),
    ("calls", "Calls", "int"),
    ("single_candidate_share", "Calls with a single candidate", "percent"),
    ("mean_likelihood", "Mean likelihood", "percent"),
    ("below_threshold_share", "Calls below the confidence threshold", "percent"),
    ("predicted_accuracy_now", "Predicted accuracy now", "percent"),
    ("predicted_accuracy_at_recommended", "Predicted accuracy at the recommended pool",
     "percent"),
    ("calls_per_number", "Calls per number", "numbers"),
    ("unused_numbers", "Numbers without calls", "numbers"),
)


# -- filters ---------------------------------------------------------------------------------


def fmt_time(epoch: float | str | None) -> str:
    """Epoch seconds as `2026-11-28 14:03:05 UTC` (text passes through as given)."""
    if epoch is None or isinstance(epoch, str):
        return epoch or "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(epoch: float | str | None) -> str:
    if epoch is None or isinstance(epoch, str):
        return epoch or ""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def fmt_duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def phone(number: str | None) -> str:
    """A number in its national format (`(415) 555-0101`), or as given when unparsable."""
    if not number:
        return "-"
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def percent(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def call_status(call: Mapping[str, Any]) -> str:
    """"2:05 completed", "ringing", ...: what the carrier last said about the call."""
    status = call.get("dial_status") or call.get("status") or ""
    duration = fmt_duration(call.get("duration"))
    return " ".join(p for p in (duration, status) if p) or "-"


def _numbers(value: Any) -> str:
    """Phone numbers (a list) or calls per number (a dict) as one line."""
    if isinstance(value, Mapping):
        return ", ".join(f"{phone(str(n))}: {k}" for n, k in value.items()) or "none"
    return ", ".join(phone(str(n)) for n in value) or "none"


_FORMATS: dict[str, Any] = {
    "int": lambda v: f"{v:,.0f}", "float": lambda v: f"{v:,.2f}",
    "percent": lambda v: percent(v, 1), "seconds": lambda v: f"{v / 60:.1f} min",
    "hour": lambda v: f"{int(v):02d}:00-{(int(v) + 1) % 24:02d}:00 UTC", "numbers": _numbers,
}


def figure(value: Any, kind: str) -> str:
    """One figure of the accuracy report, formatted by its kind (see FIGURES)."""
    if value is None:
        return "-"
    try:
        return str(_FORMATS[kind](value))
    except (TypeError, ValueError):
        return str(value)


def change_text(change: Any) -> str:
    """The pool change a verdict asks for: "+2 numbers", "-1 number", "no change"."""
    if not isinstance(change, int | float) or change == 0:
        return "no change"
    n = int(change)
    return f"{n:+d} number{'s' * (abs(n) != 1)}"


def figures(source: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, formatted value) of each figure the report gives for a source."""
    return [(label, figure(source[key], kind)) for key, label, kind in FIGURES if key in source]


def install(env: jinja2.Environment) -> None:
    env.filters.update(time=fmt_time, iso=iso, phone=phone, percent=percent,
                       status=call_status, change=change_text)
    env.globals.update(likelihood=ui_charts.likelihood_bar, band=ui_charts.band,
                       verdict_class=lambda v: VERDICT_CLASS.get(v, "other"))


# -- call log --------------------------------------------------------------------------------


def day_start(raw: str, field: str) -> float | None:
    """Epoch seconds of a `YYYY-MM-DD` date at 00:00 UTC; None when empty; ValueError else."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{field} must be a date (YYYY-MM-DD)") from None
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"{field} must be between {EARLIEST_DAY} and {LATEST_DAY}")
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def api_query(form: Mapping[str, str]) -> dict[str, str]:
    """The call API's query for the log's filter form: dates become the half-open UTC range
    [from 00:00, the day after `to` 00:00), the confidence band a likelihood range. Raises
    ValueError naming the field on a bad date."""
    query = {k: form[k] for k in ("site", "source", "cursor") if form.get(k)}
    since, until = day_start(form.get("from", ""), "from"), day_start(form.get("to", ""), "to")
    if since is not None:
        query["from"] = str(since)
    if until is not None:
        query["to"] = str(until + DAY_S)
    low, high = CONFIDENCE.get(form.get("confidence", ""), (None, None))
    if low is not None:
        query["min_likelihood"] = str(low)
    if high is not None:
        query["max_likelihood"] = str(high)
    return query


def filter_values(form: Mapping[str, str]) -> dict[str, str]:
    """The filter form's fields as submitted, for refilling it (never the cursor)."""
    keys = ("site", "source", "from", "to", "confidence")
    return {k: form.get(k, "") for k in keys}


def source_names(config: Config) -> list[str]:
    return sorted({s.name for site in config.sites for s in site.sources})


# -- call detail -----------------------------------------------------------------------------


def timeline(details: Mapping[str, Any] | None) -> list[tuple[float, str]]:
    """A session's visit as (time, what happened) rows, oldest first."""
    if not details:
        return []
    views = details.get("pageviews") or 0
    said = {"started_at": f"landed ({views} pageview{'s' * (views != 1)} in all)"}
    rows = [(details[k], said.get(k, label)) for k, label in TIMELINE_KINDS
            if details.get(k) is not None]
    return sorted(rows, key=lambda r: r[0])


def candidates(call: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The call's candidate sessions in the engine's order: best first by their visitor's
    likelihood (a person with two sessions on the number is the sum of both), then by their
    own. `visitor_likelihood` is that sum, given when the visitor has more than one session."""
    rows = call.get("candidates", [])
    totals: dict[str, float] = {}
    for c in rows:
        totals[c["visitor"]] = totals.get(c["visitor"], 0.0) + (c["likelihood"] or 0.0)
    sessions = Counter(c["visitor"] for c in rows)
    return [{**c, "timeline": timeline(c.get("details")),
             "attached": c["session"] == call.get("session"),
             "visitor_likelihood": min(1.0, totals[c["visitor"]])
             if sessions[c["visitor"]] > 1 else None} for c in rows]


def campaign(details: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The source and campaign values of a session: UTM parameters, then click ids."""
    if not details:
        return []
    return [*sorted(details.get("utm", {}).items()), *sorted(details.get("click_ids", {}).items())]


# -- report and sources ----------------------------------------------------------------------


def report_period(form: Mapping[str, str], now: float) -> tuple[float, float]:
    """[since, until) of the report form: whole UTC days, by default the last REPORT_DAYS."""
    today = datetime.fromtimestamp(now, UTC).date()
    default_from = (today - timedelta(days=REPORT_DAYS - 1)).isoformat()
    since = day_start(form.get("from") or default_from, "from")
    until = day_start(form.get("to") or today.isoformat(), "to")
    assert since is not None and until is not None
    if until < since:
        raise ValueError("to must not be before from")
    if until + DAY_S - since > MAX_PERIOD_S:
        raise ValueError(f"the period is longer than {MAX_PERIOD_S // DAY_S:.0f} days")
    return since, until + DAY_S


def period_form(since: float, until: float) -> dict[str, str]:
    """The report form's dates for the period [since, until) (`to` is the last whole day)."""
    def day(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).date().isoformat()
    return {"from": day(since), "to": day(until - DAY_S)}


def report_sources(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each source of an accuracy report with its charts drawn."""
    out = []
    for src in report.get("sources", []):
        view = {**src, "figures": figures(src)}
        hours, hist = src.get("reserved_by_hour"), src.get("likelihood_histogram")
        if hours:
            view["hour_chart"] = ui_charts.reserved_by_hour(hours, src.get("pool_size") or 0,
                                                            src.get("source", ""))
        if hist:
            view["hist_chart"] = ui_charts.likelihood_histogram(hist, src.get("source", ""))
        out.append(view)
    return out


def _condition(key: str, value: object) -> str:
    if value is True:
        return key
    if isinstance(value, list):
        return f"{key} = {' | '.join(map(str, value))}"
    return f"{key} = {str(value).lower() if isinstance(value, bool) else value}"


def rules_text(source: SourceConfig) -> list[str]:
    """A source's match rules as short lines ("gclid", "utm_source = google and ..."): its own
    `match`, else the preset its name implies; the lines are OR-ed."""
    rules = source.match or implicit_rules(source.name)
    return [" and ".join(_condition(k, v) for k, v in rule_to_dict(r).items()) for r in rules]


def sources_view(config: Config, stats: list[Any]) -> list[dict[str, Any]]:
    """Each site with its sources, numbers and, for pools, the live reserved/cooling/free."""
    live = {(s.site, s.source): s for s in stats}
    return [{"site": site, "sources": [
        {"config": src, "rules": rules_text(src), "stats": live.get((site.key, src.name)),
         "bar": _pool_bar(live.get((site.key, src.name)))} for src in site.sources]}
        for site in config.sites]


def _pool_bar(stats: Any) -> Any:
    return None if stats is None else ui_charts.pool_bar(stats.reserved, stats.cooling,
                                                          stats.free)
