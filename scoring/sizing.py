"""Pool-sizing advice for the accuracy report: recommended size, verdict, and its reason.

Pure and stdlib-only, on top of `scoring.erlang`. The shell (`gateway.store.reports`) measures
a source's traffic over a period; this module turns the figures into advice a user can check:

- **Offered load** a = peak-hour new sessions x mean reservation time (erlangs). The peak hour
  is measured by the shell (time-consistent busy hour, see `gateway.store.reports`).
- **Recommended pool** = the smallest pool whose Erlang B blocking at that load is at most the
  target (default 2%): the share of new visitors who would find every number reserved and have
  to share one. Erlang B needs Poisson arrivals (true within an hour) and any reservation-time
  distribution (insensitivity), so it sizes on the two figures above alone.
- **Verdict.** "more numbers" as soon as the pool is below the recommendation (its predicted
  sharing is over the target: attribution suffers now), change = recommended - pool.
  "fewer numbers" only when the pool is clearly above it: more than `SHRINK_FACTOR` times the
  recommendation *and* more than `SHRINK_MARGIN` numbers over it, change = recommended - pool.
  Otherwise "just right", change 0. The band is deliberately one-sided: a pool of exactly the
  recommended size is just right; a little surplus is cheap (a number costs about a dollar a
  month) while a week's peak hour is a noisy estimate (a peak of 30 sessions has a Poisson
  error near 18% on a single day) and traffic grows, so removal is only advised when the pool
  would still meet the target at half again the measured load; the margin keeps small pools
  (a recommendation of 1-4) from flapping between verdicts on a single number.
- **Measured against predicted.** The shell also measures the share of new visitors at the peak
  hour who found every number reserved. When it is off Erlang B's prediction by a factor of two
  or more, beyond sampling noise, the reason says so and why: an overloaded pool (predicted
  sharing over `OVERLOADED`) shares far more than Erlang B says, because a visitor who shares
  is not lost as Erlang B assumes but lengthens the shared number's reservation; in a pool
  that is not overloaded it means arrivals are not Poisson (a mailing sends bursts; a calm
  peak makes the advice err on the safe side).
- With no sessions in the period there is nothing to size on: "just right", change 0, and the
  reason says why (the report never advises removing numbers from a paused campaign).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scoring.erlang import erlang_b, offered_load, servers_for

MORE = "more numbers"
FEWER = "fewer numbers"
RIGHT = "just right"
VERDICTS = (MORE, FEWER, RIGHT)

GUIDELINE_VISITORS_PER_NUMBER = 20  # design.md: CTM's reference, 1 number per 20 daily visitors
SHRINK_FACTOR = 1.5  # "clearly oversized": still meets the target at 1.5x the measured load
SHRINK_MARGIN = 2  # ... and more than 2 numbers over, so tiny pools do not flap on one number
DISAGREE_RATIO = 2.0  # measured sharing "strongly" disagrees: off by a factor of two or more,
DISAGREE_SIGMAS = 3.0  # ... by more than three binomial standard errors of the measurement,
DISAGREE_MIN_GAP = 0.01  # ... and by more than one percentage point (tiny shares are noise)
MIN_DISAGREE_SAMPLE = 20  # fewer peak-hour arrivals than this measure nothing worth quoting
# Erlang B treats a visitor who finds every number reserved as lost; here they share, and their
# activity keeps the shared number reserved longer. Negligible at a few percent; past ~10% the
# extra holding feeds on itself and measured sharing runs far above the prediction.
OVERLOADED = 0.10


@dataclass(frozen=True, slots=True)
class Traffic:
    """A source's measured figures over the period (inputs of the advice)."""

    pool: int  # numbers in the pool now
    peak_hour_sessions: float  # new sessions in the peak hour (per hour)
    mean_reservation_s: float  # mean (last activity - start + idle timeout)
    measured_blocking: float | None = None  # share of peak-hour new visitors who had to share
    peak_arrivals: int = 0  # how many peak-hour new visitors that share is measured on


@dataclass(frozen=True, slots=True)
class Advice:
    load: float  # offered load at the peak hour, erlangs
    blocking: float  # Erlang B blocking of the current pool at that load
    recommended: int
    recommended_blocking: float
    verdict: str  # one of VERDICTS
    change: int  # numbers to add (+) or remove (-); 0 when just right
    reason: str  # one sentence


def guideline_pool(daily_visitors: float) -> int:
    """The reference guideline: 1 number per 20 daily visitors, at least one."""
    return max(1, math.ceil(daily_visitors / GUIDELINE_VISITORS_PER_NUMBER - 1e-9))


def recommended_pool(load: float, target: float) -> int:
    """The smallest pool (at least one number) whose Erlang B blocking is at most `target`."""
    return max(1, servers_for(load, target))


def verdict(pool: int, recommended: int) -> tuple[str, int]:
    """(verdict, change) for a pool against its recommended size (see the module docstring)."""
    if pool < recommended:
        return MORE, recommended - pool
    if pool > recommended * SHRINK_FACTOR and pool > recommended + SHRINK_MARGIN:
        return FEWER, recommended - pool
    return RIGHT, 0


def advise(t: Traffic, target: float) -> Advice:
    """The advice for one online source: load, blocking, recommendation, verdict, reason."""
    load = offered_load(t.peak_hour_sessions, t.mean_reservation_s)
    blocking = erlang_b(t.pool, load)
    recommended = recommended_pool(load, target)
    rec_blocking = erlang_b(recommended, load)
    if t.peak_hour_sessions <= 0:
        reason = "No new sessions from this source in the period, so there is nothing to size " \
            "the pool on: keep it as it is."
        return Advice(load, blocking, recommended, rec_blocking, RIGHT, 0, reason)
    name, change = verdict(t.pool, recommended)
    reason = _reason(t, name, load=load, blocking=blocking, recommended=recommended,
                     rec_blocking=rec_blocking, target=target)
    return Advice(load, blocking, recommended, rec_blocking, name, change, reason)


def _reason(t: Traffic, name: str, *, load: float, blocking: float, recommended: int,
            rec_blocking: float, target: float) -> str:
    context = (f"{t.peak_hour_sessions:.0f} new sessions in the peak hour each held a number "
               f"{t.mean_reservation_s / 60:.0f} min on average ({load:.1f} erlangs)")
    if name == MORE:
        verdict_text = (f"{t.pool} numbers leave {blocking:.1%} of new visitors sharing, over "
                        f"the {target:.0%} target; {recommended} bring it to {rec_blocking:.1%}")
    elif name == FEWER:
        verdict_text = (f"{recommended} numbers already keep sharing at {rec_blocking:.1%} "
                        f"(target {target:.0%}), and {t.pool} is more than "
                        f"{SHRINK_FACTOR:g} times that")
    else:
        verdict_text = (f"{t.pool} numbers keep sharing at {blocking:.1%}, within the "
                        f"{target:.0%} target")
    note = disagreement(t.measured_blocking, blocking, t.peak_arrivals)
    return f"{context}: {verdict_text}{note}."


def disagreement(measured: float | None, predicted: float, sample: int) -> str:
    """A clause for the reason when measured sharing strongly disagrees with Erlang B, else ""."""
    if measured is None or sample < MIN_DISAGREE_SAMPLE:
        return ""
    gap = measured - predicted
    noise = DISAGREE_SIGMAS * math.sqrt(max(predicted * (1 - predicted), 1e-12) / sample)
    if abs(gap) <= max(noise, DISAGREE_MIN_GAP):
        return ""
    if measured >= predicted * DISAGREE_RATIO and predicted > OVERLOADED:
        return (f"; {measured:.1%} of new visitors at the peak hour really shared, against "
                f"{predicted:.1%} predicted, because past its capacity a pool snowballs: every "
                "shared visitor lengthens the shared number's reservation")
    if measured >= predicted * DISAGREE_RATIO:
        return (f"; but {measured:.1%} of new visitors at the peak hour really shared, against "
                f"{predicted:.1%} predicted, so visits arrive in bursts (a mailing, an ad "
                "flight) and the pool needs more room than Erlang B says")
    if measured * DISAGREE_RATIO <= predicted:
        return (f"; measured sharing at the peak hour was only {measured:.1%} against "
                f"{predicted:.1%} predicted, so the peak is calmer than a Poisson hour and the "
                "advice errs on the safe side")
    return ""


@dataclass(frozen=True, slots=True)
class BusyHour:
    """The time-consistent busy hour of a source: the UTC hour of day with the most new
    sessions over the period, and its figures averaged over the busier half of the days (as
    Erlang B sizing wants a peak that recurs, not one freak day)."""

    hour: int | None  # UTC hour of day (None: no sessions)
    sessions: float  # mean new sessions in that hour over the busier half of the days
    fresh: int  # new visitors in it on those days
    blocked: int  # ... who started on a reserved number


def busy_hour(rows: Sequence[Mapping[str, Any]], day_buckets: int) -> BusyHour:
    """From (day, hour, sessions, fresh, blocked) rows: the busy hour and its figures."""
    by_hour = [0] * 24
    for r in rows:
        by_hour[r["hour"]] += r["sessions"]
    if not any(by_hour):
        return BusyHour(None, 0.0, 0, 0)
    hour = max(range(24), key=lambda h: (by_hour[h], -h))
    days = {d: (0, 0, 0) for d in range(day_buckets)}
    for r in rows:
        if r["hour"] == hour:
            days[r["day"]] = (r["sessions"], r["fresh"], r["blocked"])
    busiest = sorted(days.values(), reverse=True)[:max(1, math.ceil(day_buckets / 2))]
    return BusyHour(hour, sum(d[0] for d in busiest) / len(busiest),
                    sum(d[1] for d in busiest), sum(d[2] for d in busiest))
