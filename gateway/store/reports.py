"""The accuracy report (issue 7): per source of a site, over a period, the figures that say
whether its pool needs more tracking numbers, fewer, or is just right.

`accuracy_report(pool, config, site=..., since=..., until=...)` is the one entry point, shared by
`GET /v1/reports/accuracy`, `dni-gateway report accuracy` and the dashboard. It measures with SQL
aggregates (nothing per row leaves Postgres except for the replay), sizes with `scoring.sizing`
(Erlang B) and predicts accuracy with `scoring.replay`. Definitions, all over sessions started
(and calls made) in [since, until), clipped to the hour of the site's first session so that a
site younger than the period is not averaged over days it did not exist:

- daily visitors: distinct (visitor, day) pairs / days;
- peak-hour new sessions: the time-consistent busy hour (ITU-T E.500 style): the clock hour (UTC)
  with the most new sessions over the period, averaged over the busier half of the days, so
  quiet weekends neither dilute the peak nor a single spike define it;
- mean reservation: mean of (last activity - start + the source's idle timeout);
- shared share: sessions marked shared (given a number another live session held, or holding a
  number somebody was then given); peak blocked share: new (not returning) visitors in the busy
  hour of those days who started on a number already reserved, which is what Erlang B predicts;
- likelihood figures over the attached likelihood of calls (after overrides); a call with no
  candidate counts as below the threshold;
- reserved_by_hour: mean reserved numbers per UTC hour of day (a number is reserved from a
  session's start to its last activity plus the idle timeout; overlaps count once).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncpg

from gateway.engine.config import Config, SiteConfig, SourceConfig, parse_config
from scoring import replay as replays
from scoring import sizing
from scoring.sizing import busy_hour

DEFAULT_THRESHOLD = 0.9  # issue 7: calls attached below 0.9 likelihood are "not confident"
DEFAULT_TARGET = 0.02  # issue 7: recommend the smallest pool sharing at most 2% at peak
DAY_S = 86_400.0
HOUR_S = 3_600.0
HISTOGRAM_BINS = 10  # likelihood distribution in tenths of 0..1
MIN_PERIOD_S = HOUR_S  # a period clipped to less than an hour is measured as one hour
RESERVATION_LOOKBACK_S = DAY_S  # sessions started this long before the period may still hold
# a number in it (idle tabs); older ones are ignored so the query stays on the index
MAX_WARMUP_S = 7 * DAY_S  # replay a week before the period so early calls have their candidates;
# older sessions are rarely decisive (the recency hazard) and would multiply the replay's cost
MAX_REPLAY_SESSIONS = 50_000  # ~a week of a 7,000-visitor-a-day site, a few seconds of replay;
# past it the replay keeps the latest sessions (and counts the calls they cover)
KINDS = ("pageview", "ping", "click_to_call", "hidden")  # event kinds by the code SQL returns

# One thread replays at a time: the replay is CPU-bound, and running it off the event loop
# keeps the swap and call paths answering while a report is computed.
_REPLAYS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-replay")


class ReportError(Exception):
    """A report request that cannot be served; `field` names the input, `status` the HTTP hint."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Period:
    """The measured window of one site: [since, until), `days` long (clipped, at least 1 h)."""

    since: float
    until: float

    @property
    def seconds(self) -> float:
        return max(MIN_PERIOD_S, self.until - self.since)

    @property
    def days(self) -> float:
        return self.seconds / DAY_S

    @property
    def day_buckets(self) -> int:
        return max(1, math.ceil(self.seconds / DAY_S - 1e-9))


# ---- SQL ---------------------------------------------------------------------------------------

FIRST_SESSION = """
SELECT extract(epoch FROM min(started_at))::float8 FROM sessions
WHERE site = $1 AND source = ANY($2::text[]) AND started_at < to_timestamp($3)
"""

SESSION_FIGURES = """
SELECT source, count(*) AS sessions,
       count(DISTINCT (visitor, floor((extract(epoch FROM started_at)::float8 - $2::float8)
                                      / 86400))) AS visitor_days,
       avg(extract(epoch FROM last_activity - started_at))::float8 AS mean_active_s,
       avg(shared::int)::float8 AS shared_share
FROM sessions
WHERE site = $1 AND started_at >= to_timestamp($2::float8)
  AND started_at < to_timestamp($3::float8)
GROUP BY source
"""

# Per source, day of the period and UTC hour of day: new sessions, new visitors among them, and
# those new visitors who started on a reserved number (shared from the start: no later
# "shared" event, which marks the session whose number was given to somebody else).
HOURLY = """
SELECT s.source, floor((extract(epoch FROM s.started_at)::float8 - $2::float8) / 86400)::int
           AS day,
       (floor(extract(epoch FROM s.started_at) / 3600)::bigint % 24)::int AS hour,
       count(*) AS sessions,
       count(*) FILTER (WHERE NOT s.returning_visitor) AS fresh,
       count(*) FILTER (WHERE NOT s.returning_visitor AND s.shared AND NOT EXISTS (
           SELECT 1 FROM session_events e WHERE e.session = s.id AND e.kind = 'shared'))
           AS blocked
FROM sessions s
WHERE s.site = $1 AND s.started_at >= to_timestamp($2::float8)
  AND s.started_at < to_timestamp($3::float8)
GROUP BY 1, 2, 3
"""

# Reserved seconds per source and UTC hour of day: each session's reservation interval clipped
# to the period, merged per number (gaps and islands), then cut at hour boundaries.
RESERVED = """
WITH cfg AS (SELECT * FROM unnest($2::text[], $3::float8[]) AS c(source, idle)),
iv AS (
    SELECT s.source, s.number,
           greatest(extract(epoch FROM s.started_at)::float8, $4::float8) AS b,
           least(extract(epoch FROM s.last_activity)::float8 + c.idle, $5::float8) AS e
    FROM sessions s JOIN cfg c ON c.source = s.source
    WHERE s.site = $1 AND s.started_at >= to_timestamp($4::float8 - $6::float8)
      AND s.started_at < to_timestamp($5::float8)
),
marked AS (
    SELECT source, number, b, e,
           CASE WHEN b <= max(e) OVER (PARTITION BY source, number ORDER BY b, e
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                THEN 0 ELSE 1 END AS opens
    FROM iv WHERE e > b
),
islands AS (
    SELECT source, number, b, e,
           sum(opens) OVER (PARTITION BY source, number ORDER BY b, e) AS island
    FROM marked
),
merged AS (SELECT source, min(b) AS b, max(e) AS e FROM islands GROUP BY source, number, island)
SELECT source, (h::bigint % 24)::int AS hour,
       sum(least(e, (h + 1) * 3600) - greatest(b, h * 3600))::float8 AS seconds
FROM merged, generate_series(floor(b / 3600)::bigint, ceil(e / 3600)::bigint - 1) AS h
GROUP BY 1, 2
"""

CALL_FIGURES = """
SELECT source, count(*) AS calls,
       count(*) FILTER (WHERE candidate_count = 1) AS single,
       avg(likelihood)::float8 AS mean_likelihood,
       count(*) FILTER (WHERE likelihood IS NULL OR likelihood < $4::float8) AS below
FROM calls
WHERE site = $1 AND at >= to_timestamp($2::float8) AND at < to_timestamp($3::float8)
GROUP BY source
"""

HISTOGRAM = """
SELECT source, least(floor(likelihood * $4::int)::int, $4::int - 1) AS bin, count(*) AS calls
FROM calls
WHERE site = $1 AND at >= to_timestamp($2::float8) AND at < to_timestamp($3::float8)
  AND likelihood IS NOT NULL
GROUP BY 1, 2
"""

CALLS_PER_NUMBER = """
SELECT source, to_number, count(*) AS calls
FROM calls
WHERE site = $1 AND at >= to_timestamp($2::float8) AND at < to_timestamp($3::float8)
GROUP BY 1, 2
"""

# The replay window is cut so that it holds at most MAX_REPLAY_SESSIONS sessions.
REPLAY_CUTOFF = """
SELECT extract(epoch FROM started_at)::float8 FROM sessions
WHERE site = $1 AND source = ANY($2::text[]) AND started_at >= to_timestamp($3)
  AND started_at < to_timestamp($4)
ORDER BY started_at DESC OFFSET $5 LIMIT 1
"""

REPLAY_SESSIONS = """
SELECT s.id, s.visitor, s.source, extract(epoch FROM s.started_at)::float8 AS start, s.mobile,
       ev.ats, ev.kinds
FROM sessions s LEFT JOIN LATERAL (
    SELECT array_agg(extract(epoch FROM e.at)::float8 ORDER BY e.at, e.kind) AS ats,
           array_agg(CASE e.kind WHEN 'pageview' THEN 0 WHEN 'ping' THEN 1
                                 WHEN 'click_to_call' THEN 2 ELSE 3 END ORDER BY e.at, e.kind)
               AS kinds
    FROM session_events e
    WHERE e.session = s.id AND e.kind <> 'shared' AND e.at < to_timestamp($4)
) ev ON true
WHERE s.site = $1 AND s.source = ANY($2::text[]) AND s.started_at > to_timestamp($3)
  AND s.started_at < to_timestamp($4)
"""

REPLAY_CALLS = """
SELECT c.id, c.source, extract(epoch FROM c.at)::float8 AS at, c.caller, c.matched_by,
       c.session, cand.sessions, cand.likelihoods
FROM calls c LEFT JOIN LATERAL (
    SELECT array_agg(k.session ORDER BY k.rank) AS sessions,
           array_agg(k.likelihood ORDER BY k.rank) AS likelihoods
    FROM call_candidates k WHERE k.call_id = c.id
) cand ON true
WHERE c.site = $1 AND c.source = ANY($2::text[]) AND c.at > to_timestamp($3)
  AND c.at < to_timestamp($4)
"""


# ---- the report --------------------------------------------------------------------------------


async def accuracy_report(
    pool: asyncpg.Pool, config: Mapping[str, Any] | Config, *, site: str | None,
    since: float, until: float, threshold: float = DEFAULT_THRESHOLD,
    target: float = DEFAULT_TARGET, replay: bool = True,
) -> dict[str, Any]:
    """The accuracy report of `site` (every site when None) for [since, until) epoch seconds.

    `config` is the engine config dict (`config_repo.load_config`) or a parsed `Config`
    (`engine.config`). Raises ReportError for an unknown site or out-of-range arguments.
    Returns a JSON-able dict::

        {"site", "from", "to", "threshold", "target",
         "sources": [{"site", "source", "kind", "days", ...online or offline figures...}]}

    Online sources: sessions, daily_visitors, pool_size, guideline_pool, ratio_vs_guideline,
    peak_hour (UTC), peak_hour_sessions, mean_reservation_s, offered_load_erlangs,
    shared_share, peak_blocked_share, erlang_b_blocking, calls, single_candidate_share,
    mean_likelihood, likelihood_histogram (10 bins over 0..1), below_threshold_share,
    recommended_pool, recommended_blocking, verdict ("more numbers" | "fewer numbers" |
    "just right"), change (+n / -n / 0), reason (one sentence), reserved_by_hour (24 floats),
    predicted_accuracy_now, predicted_accuracy_at_recommended and replayed_calls (None when
    `replay` is False; the accuracies also when no call could be replayed). Shares are 0..1;
    shares of calls are None without calls.
    Offline sources: calls, calls_per_number ({number: calls}, every configured number),
    unused_numbers. The replay runs in a worker thread, one report at a time.
    """
    check_arguments(since, until, threshold, target)
    parsed = config if isinstance(config, Config) else parse_config(config)
    sites = _sites(parsed, site)
    out = []
    for s in sites:
        out.extend(await site_report(pool, s, since=since, until=until, threshold=threshold,
                                     target=target, replay=replay))
    return {"site": site, "from": since, "to": until, "threshold": threshold,
            "target": target, "sources": out}


def check_arguments(since: float, until: float, threshold: float, target: float) -> None:
    """Raise ReportError naming the first argument out of range."""
    if not math.isfinite(since) or not math.isfinite(until) or since >= until:
        raise ReportError("from", "from must be before to")
    if not 0.0 <= threshold <= 1.0:
        raise ReportError("threshold", "threshold must be between 0 and 1")
    if not 0.0 < target < 1.0:
        raise ReportError("target", "target must be between 0 and 1 (exclusive)")


def _sites(config: Config, key: str | None) -> list[SiteConfig]:
    if key is None:
        return list(config.sites)
    for s in config.sites:
        if s.key == key:
            return [s]
    raise ReportError("site", f"no site {key[:64]!r}", status=404)


async def site_report(pool: asyncpg.Pool, site: SiteConfig, *, since: float, until: float,
                      threshold: float, target: float, replay: bool) -> list[dict[str, Any]]:
    """The report rows of one site's sources, in config order."""
    async with pool.acquire() as conn:
        period = await _period(conn, site, since, until)
        m = await _measure(conn, site, period, threshold)
    rows = []
    for source in site.sources:
        if source.kind == "online":
            rows.append(_online_row(site, source, period, m, target))
        else:
            rows.append(_offline_row(site, source, period, m))
    if replay:
        await _add_predictions(pool, site, period, rows)
    return rows


async def _period(conn: asyncpg.Connection, site: SiteConfig, since: float,
                  until: float) -> Period:
    """[since, until) clipped to start no earlier than the hour of the site's first session."""
    names = [s.name for s in site.sources]
    first = await conn.fetchval(FIRST_SESSION, site.key, names, until)
    if first is None:
        return Period(since, until)
    opened = math.floor(first / HOUR_S) * HOUR_S  # traffic comes by the hour: count that hour
    return Period(max(since, min(opened, until - MIN_PERIOD_S)), until)


# ---- measurements ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Measured:
    """What the SQL aggregates returned for one site, by source name."""

    sessions: dict[str, asyncpg.Record]
    hourly: dict[str, list[asyncpg.Record]]
    reserved: dict[str, list[float]]
    calls: dict[str, asyncpg.Record]
    histogram: dict[str, list[int]]
    per_number: dict[str, dict[str, int]]


async def _measure(conn: asyncpg.Connection, site: SiteConfig, p: Period,
                   threshold: float) -> _Measured:
    key, a, b = site.key, p.since, p.until
    online = [s for s in site.sources if s.kind == "online"]
    hourly: dict[str, list[asyncpg.Record]] = {}
    for r in await conn.fetch(HOURLY, key, a, b):
        hourly.setdefault(r["source"], []).append(r)
    reserved: dict[str, list[float]] = {}
    for r in await conn.fetch(RESERVED, key, [s.name for s in online],
                              [s.idle_timeout for s in online], a, b, RESERVATION_LOOKBACK_S):
        reserved.setdefault(r["source"], [0.0] * 24)[r["hour"]] = r["seconds"]
    histogram: dict[str, list[int]] = {}
    for r in await conn.fetch(HISTOGRAM, key, a, b, HISTOGRAM_BINS):
        histogram.setdefault(r["source"], [0] * HISTOGRAM_BINS)[r["bin"]] = r["calls"]
    per_number: dict[str, dict[str, int]] = {}
    for r in await conn.fetch(CALLS_PER_NUMBER, key, a, b):
        per_number.setdefault(r["source"], {})[r["to_number"]] = r["calls"]
    return _Measured(
        sessions={r["source"]: r for r in await conn.fetch(SESSION_FIGURES, key, a, b)},
        hourly=hourly, reserved=reserved,
        calls={r["source"]: r for r in await conn.fetch(CALL_FIGURES, key, a, b, threshold)},
        histogram=histogram, per_number=per_number,
    )


def reserved_by_hour(seconds: Sequence[float], period: Period) -> list[float]:
    """Mean reserved numbers per UTC hour of day: reserved seconds / the period's seconds in
    that hour of day."""
    exposure = hour_exposure(period.since, period.since + period.seconds)
    return [round(s / e, 3) if e > 0 else 0.0 for s, e in zip(seconds, exposure, strict=True)]


def hour_exposure(since: float, until: float) -> list[float]:
    """Seconds of [since, until) falling in each UTC hour of day."""
    full_days = (until - since) // DAY_S
    out = [full_days * HOUR_S] * 24
    t = since + full_days * DAY_S
    while t < until:
        edge = min(until, (math.floor(t / HOUR_S) + 1) * HOUR_S)
        out[int(t // HOUR_S) % 24] += edge - t
        t = edge
    return out


def _online_row(site: SiteConfig, source: SourceConfig, period: Period, m: _Measured,
                target: float) -> dict[str, Any]:
    s = m.sessions.get(source.name)
    sessions = s["sessions"] if s else 0
    daily = (s["visitor_days"] if s else 0) / period.days
    busy = busy_hour(m.hourly.get(source.name, []), period.day_buckets)
    reservation = (s["mean_active_s"] if s else 0.0) + source.idle_timeout
    blocked = busy.blocked / busy.fresh if busy.fresh else None
    advice = sizing.advise(sizing.Traffic(len(source.numbers), busy.sessions, reservation,
                                          blocked, busy.fresh), target)
    guideline = sizing.guideline_pool(daily)
    row: dict[str, Any] = {
        "site": site.key, "source": source.name, "kind": "online", "days": round(period.days, 3),
        "sessions": sessions, "daily_visitors": round(daily, 2),
        "pool_size": len(source.numbers), "guideline_pool": guideline,
        "ratio_vs_guideline": round(len(source.numbers) / guideline, 3),
        "peak_hour": busy.hour, "peak_hour_sessions": round(busy.sessions, 2),
        "mean_reservation_s": round(reservation, 1),
        "offered_load_erlangs": round(advice.load, 3),
        "shared_share": round(s["shared_share"], 4) if s else 0.0,
        "peak_blocked_share": None if blocked is None else round(blocked, 4),
        "erlang_b_blocking": round(advice.blocking, 4),
    }
    row |= _call_figures(m, source.name)
    row |= {
        "recommended_pool": advice.recommended,
        "recommended_blocking": round(advice.recommended_blocking, 4),
        "verdict": advice.verdict, "change": advice.change, "reason": advice.reason,
        "reserved_by_hour": reserved_by_hour(m.reserved.get(source.name, [0.0] * 24), period),
        "predicted_accuracy_now": None, "predicted_accuracy_at_recommended": None,
        "replayed_calls": None,  # filled in by the replay when it runs
    }
    return row


def _call_figures(m: _Measured, source: str) -> dict[str, Any]:
    c = m.calls.get(source)
    histogram = m.histogram.get(source, [0] * HISTOGRAM_BINS)
    if c is None:
        return {"calls": 0, "single_candidate_share": None, "mean_likelihood": None,
                "likelihood_histogram": histogram, "below_threshold_share": None}
    calls = c["calls"]
    return {
        "calls": calls,
        "single_candidate_share": round(c["single"] / calls, 4),
        "mean_likelihood": _rounded(c["mean_likelihood"]),
        "likelihood_histogram": histogram,
        "below_threshold_share": round(c["below"] / calls, 4),
    }


def _offline_row(site: SiteConfig, source: SourceConfig, period: Period,
                 m: _Measured) -> dict[str, Any]:
    counted = m.per_number.get(source.name, {})
    per_number = {n: counted.get(n, 0) for n in source.numbers}
    per_number |= {n: k for n, k in sorted(counted.items()) if n not in per_number}
    return {
        "site": site.key, "source": source.name, "kind": "offline",
        "days": round(period.days, 3), "calls": sum(counted.values()),
        "calls_per_number": per_number,
        "unused_numbers": [n for n in source.numbers if not counted.get(n)],
    }


# ---- predicted accuracy (replay) ---------------------------------------------------------------


async def _add_predictions(pool: asyncpg.Pool, site: SiteConfig, period: Period,
                           rows: list[dict[str, Any]]) -> None:
    """Replay the period at today's pool sizes and at the recommended ones (one draw of the
    callers for both, so the two are compared on the same truth)."""
    online = [r for r in rows if r["kind"] == "online"]
    if not online:
        return
    plan = site_plan(site)
    async with pool.acquire() as conn:
        traces = await load_traces(conn, site, period.since, period.until)
    recommended = {r["source"]: r["recommended_pool"] for r in online}
    loop = asyncio.get_running_loop()
    now, better = await loop.run_in_executor(_REPLAYS, _predict, plan, traces, recommended)
    for r in online:
        r["predicted_accuracy_now"] = _rounded(now[r["source"]].accuracy)
        r["predicted_accuracy_at_recommended"] = _rounded(better[r["source"]].accuracy)
        r["replayed_calls"] = now[r["source"]].calls


def _predict(plan: replays.SitePlan, traces: Traces, recommended: Mapping[str, int]) -> tuple[
    dict[str, replays.SourceAccuracy], dict[str, replays.SourceAccuracy]
]:
    callers = replays.draw_callers(traces.calls)
    now = replays.replay(plan, traces.sessions, traces.calls, callers)
    if all(recommended[s.name] == s.numbers for s in plan.sources):
        return now, now
    better = replays.replay(plan.resized(recommended), traces.sessions, traces.calls, callers)
    return now, better


def _rounded(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def site_plan(site: SiteConfig) -> replays.SitePlan:
    """The replay's view of a site: its online sources with their recorded options."""
    sources = tuple(
        replays.SourcePlan(s.name, len(s.numbers), s.idle_timeout, s.match_window, s.overflow,
                           s.scoring)
        for s in site.sources if s.kind == "online"
    )
    return replays.SitePlan(site.key, sources, site.stickiness_days)


@dataclass(frozen=True, slots=True)
class Traces:
    sessions: list[replays.SessionTrace]
    calls: list[replays.CallTrace]
    since: float  # where the replayed window starts (warm-up included)


async def load_traces(conn: asyncpg.Connection, site: SiteConfig, since: float,
                      until: float) -> Traces:
    """The site's online sessions (with events) and calls from a warm-up before `since` to
    `until`, at most MAX_REPLAY_SESSIONS sessions (the latest); calls before `since` are
    replayed for the caller history but not counted."""
    online = [s for s in site.sources if s.kind == "online"]
    names = [s.name for s in online]
    warmup = min(MAX_WARMUP_S, max((s.match_window for s in online), default=0.0))
    start = since - warmup
    cutoff = await conn.fetchval(REPLAY_CUTOFF, site.key, names, start, until,
                                 MAX_REPLAY_SESSIONS)
    start = max(start, cutoff) if cutoff is not None else start - 1e-6
    sessions = [_session_trace(r) for r in await conn.fetch(REPLAY_SESSIONS, site.key, names,
                                                            start, until)]
    calls = [_call_trace(r, since) for r in await conn.fetch(REPLAY_CALLS, site.key, names,
                                                             start, until)]
    return Traces(sessions, calls, start)


def _session_trace(r: asyncpg.Record) -> replays.SessionTrace:
    ats, kinds = r["ats"] or [], r["kinds"] or []
    events = tuple(zip(ats, (KINDS[k] for k in kinds), strict=True))
    return replays.SessionTrace(r["id"], r["visitor"], r["source"], r["start"], r["mobile"],
                                events)


def _call_trace(r: asyncpg.Record, since: float) -> replays.CallTrace:
    candidates = tuple(zip(r["sessions"] or [], r["likelihoods"] or [], strict=True))
    override = r["session"] if r["matched_by"] != "auto" else None
    return replays.CallTrace(r["id"], r["source"], r["at"], r["caller"], candidates, override,
                             counted=r["at"] >= since)
