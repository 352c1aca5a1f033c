"""`score` over `TimelineColumns`: the same floats as over `Timeline`s, by the loop and by
numpy alike, whatever the calls' times (bucket edges included)."""

from __future__ import annotations

import math
import random
from array import array
from functools import reduce
from operator import add

import numpy as np
import pytest

from scoring import model
from scoring.features import LIVE_S, NONE_TIME, STEPS_PER_E, CallContext, Timeline, TimelineColumns
from scoring.model import score

T0 = 1_800_000_000.0  # epoch seconds of today's magnitude: the memo's margins must hold there


def columns(rng: random.Random, n: int, at: float, *,
            zero_pageviews: bool = False) -> TimelineColumns:
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
        pageviews=array("q", [rng.randint(0 if zero_pageviews else 1, 40) for _ in range(n)]),
        caller_matches=array("q", [rng.random() < 0.05 for _ in range(n)]),
        caller_likelihood=likelihoods(rng, n),
        visitor_sessions=array("q", [1 + (e and rng.random() < 0.5) for e in evidence]),
        evidence=evidence)


def likelihoods(rng: random.Random, n: int) -> array[float]:
    """Earlier attributions' likelihoods, the clipped ends included."""
    return array("d", [rng.choice([0.0, 1.0, rng.random()]) for _ in range(n)])


def edges(c: TimelineColumns, after: float) -> list[float]:
    """Call times on and right around bucket edges and the live limit of some candidates."""
    out = []
    for last in list(c.last_activity)[:40]:
        gap = after - last
        k = int(math.log1p(gap) * STEPS_PER_E) + 1 if gap > 0 else 1
        for edge in (last + math.expm1(k / STEPS_PER_E), last + LIVE_S):
            out += [math.nextafter(edge, -math.inf), edge, math.nextafter(edge, math.inf)]
    return sorted(t for t in out if t >= after)


def test_numpy_weighs_exactly_as_the_loop() -> None:
    """`scoring.vector` against the loop (`model._weigh`), float for float: random columns,
    call times on and around bucket edges and the live limit, callers with and without history,
    pageview counts past the cap and zero."""
    rng = random.Random(5)
    m = model.current()
    for n in (model.vector.MIN_CANDIDATES, 300):
        c = columns(rng, n, T0, zero_pageviews=True)
        times = [*edges(c, T0 + 0.5), T0 - 100.0, T0 + 10.0, T0 + 7200.0, T0 + 40 * 86400.0]
        for at in times:
            for f_nomatch in (1.0, m.flags[model.FLAG_CALLER_OTHER]):
                cols = [getattr(c, name) for name in model._COLUMNS]
                expected = model._weigh(CallContext(at, None, 1800.0), m, f_nomatch, cols)
                got = model.vector.weights(at, m, f_nomatch, cols).tolist()
                assert got == expected
                assert model.vector.total(np.array(expected)) == reduce(add, expected, 0.0)


def test_an_index_on_a_bucket_edge_is_libms() -> None:
    """Where numpy's log1p could round across an integer, the index is math.log1p's."""
    edge = math.expm1(37 / STEPS_PER_E)
    gaps = np.array([math.nextafter(edge, 0.0), edge, math.nextafter(edge, math.inf), 0.0, -1.0])
    got = model.vector._buckets(gaps).tolist()
    assert got == [int(math.log1p(g) * STEPS_PER_E) if g > 0 else 0 for g in gaps.tolist()]


@pytest.mark.parametrize("n", [30, 400])  # the loop, and numpy
def test_columns_score_like_timelines(n: int) -> None:
    rng = random.Random(4)
    c = columns(rng, n, T0)
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
