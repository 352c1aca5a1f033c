"""`score` over `TimelineColumns`: the same floats as over `Timeline`s, and with a `Memo` the
same floats as without one, whatever the calls' times (bucket edges included)."""

from __future__ import annotations

import math
import random
from array import array
from dataclasses import replace

from scoring import model
from scoring.features import NONE_TIME, CallContext, Memo, Timeline, TimelineColumns
from scoring.model import STEPS_PER_E, score

T0 = 1_800_000_000.0  # epoch seconds of today's magnitude: the memo's margins must hold there


def columns(rng: random.Random, n: int, at: float, memo: Memo | None) -> TimelineColumns:
    """Array columns like the engine's: mostly plain candidates, some with evidence."""
    last = array("d", [at - rng.choice([rng.uniform(-3, 60), rng.uniform(0, 5 * 86400)])
                       for _ in range(n)])
    evidence = bytearray(rng.random() < 0.2 for _ in range(n))
    c2c = array("d", [t - rng.uniform(0, 2000) if e and rng.random() < 0.5 else NONE_TIME
                      for t, e in zip(last, evidence, strict=True)])
    hidden = array("d", [t + rng.uniform(0, 40) if e and rng.random() < 0.5 else NONE_TIME
                         for t, e in zip(last, evidence, strict=True)])
    return TimelineColumns(
        assigned_at=array("d", [t - rng.choice([0.0, rng.uniform(0, 3000)]) for t in last]),
        last_activity=last, last_click_to_call=c2c, hidden_at=hidden,
        mobile=bytearray(rng.random() < 0.5 for _ in range(n)),
        shared=bytearray(e and rng.random() < 0.5 for e in evidence),
        pageviews=array("q", [rng.randint(1, 40) for _ in range(n)]),
        caller_matches=array("q", [rng.random() < 0.05 for _ in range(n)]),
        caller_likelihood=likelihoods(rng, n),
        visitor_sessions=array("q", [1 + (e and rng.random() < 0.5) for e in evidence]),
        evidence=evidence, memo=memo)


def likelihoods(rng: random.Random, n: int) -> array[float]:
    """Earlier attributions' likelihoods, the clipped ends included."""
    return array("d", [rng.choice([0.0, 1.0, rng.random()]) for _ in range(n)])


def other_caller(c: TimelineColumns, matches: array[int], sure: array[float],
                 memo: Memo | None) -> TimelineColumns:
    """The same candidates for a call from another caller (other `caller_matches` and
    `caller_likelihood`)."""
    return TimelineColumns(
        assigned_at=c.assigned_at, last_activity=c.last_activity,
        last_click_to_call=c.last_click_to_call, hidden_at=c.hidden_at, mobile=c.mobile,
        shared=c.shared, pageviews=c.pageviews, caller_matches=matches, caller_likelihood=sure,
        visitor_sessions=c.visitor_sessions, evidence=c.evidence, memo=memo)


def without_memo(c: TimelineColumns) -> TimelineColumns:
    return other_caller(c, c.caller_matches, c.caller_likelihood, None)  # type: ignore[arg-type]


def edges(c: TimelineColumns, after: float) -> list[float]:
    """Call times on and right around bucket edges and the live limit of some candidates."""
    out = []
    for last in list(c.last_activity)[:40]:
        gap = after - last
        k = int(math.log1p(gap) * STEPS_PER_E) + 1 if gap > 0 else 1
        for edge in (last + math.expm1(k / STEPS_PER_E), last + model.LIVE_S):
            out += [math.nextafter(edge, -math.inf), edge, math.nextafter(edge, math.inf)]
    return sorted(t for t in out if t >= after)


def test_a_memo_changes_no_float() -> None:
    rng = random.Random(5)
    memo = Memo()
    c = columns(rng, 300, T0, memo)
    soon = [T0 + rng.uniform(0, 0.5) for _ in range(30)]
    times = [*sorted([*soon, *edges(c, T0 + 0.5)]), T0 - 100.0, T0 + 10.0, T0 + 7200.0]
    for seen in (False, True):
        for at in times:
            ctx = CallContext(at, "+14155550000", 1800.0, seen)
            assert score(ctx, c) == score(ctx, without_memo(c))
    for at in sorted(T0 + 7300.0 + rng.uniform(0, 60) for _ in range(40)):  # callers change
        ctx = CallContext(at, rng.choice(["+14155550000", None]), 1800.0, rng.random() < 0.5)
        matched = [rng.random() < 0.05 for _ in range(len(c))] if rng.random() < 0.5 else []
        sure = likelihoods(rng, len(c)) if rng.random() < 0.5 else c.caller_likelihood
        call = other_caller(c, array("q", matched or [0] * len(c)), sure,  # type: ignore[arg-type]
                            memo)
        assert score(ctx, call) == score(ctx, without_memo(call))
    other = columns(rng, 300, T0, memo)  # other candidates, the same memo
    ctx = CallContext(T0 + 7400.001, "+14155550000", 1800.0, True)
    assert score(ctx, other) == score(ctx, without_memo(other))
    params = model.load_params()
    shifted = replace(params, recency=tuple(h + 0.5 for h in params.recency))
    with model.use(shifted):  # another model: nothing reused from before
        assert score(ctx, other) == score(ctx, without_memo(other))


def test_columns_score_like_timelines() -> None:
    rng = random.Random(4)
    c = columns(rng, 400, T0, None)
    rows = [Timeline(f"s{i}", f"v{i}", c.assigned_at[i], last, True, bool(c.mobile[i]),
                     bool(c.shared[i]), c.pageviews[i],
                     None if math.isnan(c.last_click_to_call[i]) else c.last_click_to_call[i],
                     None if math.isnan(c.hidden_at[i]) else c.hidden_at[i], 1,
                     c.caller_matches[i], c.visitor_sessions[i], c.caller_likelihood[i])
            for i, last in enumerate(c.last_activity)]
    for ctx in (CallContext(T0, "+14155550000", 1800.0), CallContext(T0, None, 1800.0, True)):
        assert score(ctx, c) == score(ctx, rows) == score(ctx, TimelineColumns.of(rows))
    of = TimelineColumns.of(rows)
    assert list(of) == rows and of[3] == rows[3] and of[-1] == rows[-1] and of[1:3] == rows[1:3]
