"""The replay (pure): caller draws, the expected accuracy per pool size, and fidelity to the
live engine at the recorded pool size."""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.engine.records import CallRecord, SessionEvent, SessionStarted
from scoring.replay import (
    CallTrace,
    SessionTrace,
    SitePlan,
    SourcePlan,
    draw_callers,
    engine_config,
    replay,
)
from tests.reports import sim

T0 = 1_704_067_200.0
ADS = "Google Ads"
PLAN = SitePlan("acme", (SourcePlan(ADS, 1), SourcePlan("Bing Ads", 3, idle_timeout=600.0,
                                                       scoring="late-callers")))


def _pings(start: float, end: float) -> tuple[tuple[float, str], ...]:
    return tuple((t, "ping") for t in range(int(start) + 20, int(end), 20))


# Two visitors on the site at once; the call at +650 s comes while both are live, five seconds
# after Bob tapped the number.
ALICE = SessionTrace("s_alice", "v_alice", ADS, T0, True, _pings(T0, T0 + 600))
BOB = SessionTrace("s_bob", "v_bob", ADS, T0 + 100, False,
                   tuple(sorted([*_pings(T0 + 100, T0 + 700), (T0 + 645, "click_to_call")])))
CALL = CallTrace("CA1", ADS, T0 + 650, "+14155559999",
                 (("s_bob", 0.6), ("s_alice", 0.3)))  # 0.1 left for "none of them"


def test_draws_follow_the_likelihoods_and_repeat() -> None:
    calls = [CallTrace(f"CA{i}", ADS, T0 + i, None, (("a", 0.6), ("b", 0.2))) for i in range(4000)]
    drawn = draw_callers(calls, seed=1)
    assert drawn == draw_callers(reversed(calls), seed=1)
    share = Counter(drawn.values())
    assert share["a"] / len(calls) == pytest.approx(0.75, abs=0.03)  # 0.6 / (0.6 + 0.2)
    assert draw_callers([CallTrace("x", ADS, T0, None, ())]) == {"x": None}
    chosen = CallTrace("y", ADS, T0, None, (("a", 0.99),), override="b")
    assert draw_callers([chosen]) == {"y": "b"}


def test_sharing_one_number_costs_the_less_likely_caller() -> None:
    one = replay(PLAN, [ALICE, BOB], [CALL], draw_callers([CALL]))[ADS]
    # One number: whoever is drawn, the engine attaches Bob (live, tapped the number), so the
    # call is right when Bob called: 0.6 of the 0.9 a candidate called.
    assert (one.calls, one.weight, one.numbers) == (1, pytest.approx(0.9), 1)
    assert one.accuracy == pytest.approx(0.6 / 0.9)
    two = replay(PLAN.resized({ADS: 2}), [ALICE, BOB], [CALL], draw_callers([CALL]))[ADS]
    assert (two.numbers, two.accuracy) == (2, pytest.approx(1.0))  # each alone on a number


def test_an_override_is_the_truth_and_old_candidates_are_unplaced() -> None:
    chose_alice = CallTrace("CA2", ADS, T0 + 650, None, CALL.candidates, override="s_alice")
    one = replay(PLAN, [ALICE, BOB], [chose_alice], draw_callers([chose_alice]))[ADS]
    assert (one.weight, one.accuracy) == (1.0, 0.0)
    older = CallTrace("CA3", ADS, T0 + 650, None, (("s_bob", 0.5), ("s_gone", 0.4)))
    res = replay(PLAN, [ALICE, BOB], [older], draw_callers([older]))[ADS]
    assert (res.weight, res.unplaced, res.accuracy) == (0.5, pytest.approx(0.4), 1.0)


def test_warm_up_calls_are_replayed_but_not_counted() -> None:
    warm = CallTrace("CA0", ADS, T0 + 640, CALL.caller, CALL.candidates, counted=False)
    res = replay(PLAN, [ALICE, BOB], [warm], draw_callers([warm]))
    assert (res[ADS].calls, res[ADS].accuracy) == (0, None)
    assert (res["Bing Ads"].calls, res["Bing Ads"].numbers) == (0, 3)


def test_engine_config_forces_each_source_and_keeps_its_options() -> None:
    site = engine_config(PLAN)["sites"][0]
    ads, bing = site["sources"]
    assert ads["match"] == {"landing_param": "dni_replay=0"} and len(ads["numbers"]) == 1
    assert bing["idle_timeout"] == 600.0 and len(set(ads["numbers"] + bing["numbers"])) == 4
    assert (ads["scoring"], bing["scoring"]) == ("mixed", "late-callers")
    assert PLAN.resized({ADS: 2}).sources[1].scoring == "late-callers"


def _traces(records: list[object]) -> tuple[list[SessionTrace], list[CallTrace]]:
    events: dict[str, list[tuple[float, str]]] = {}
    for r in records:
        if isinstance(r, SessionEvent) and r.kind != "shared":
            events.setdefault(r.session, []).append((r.at, r.kind))
    sessions = [SessionTrace(r.session, r.visitor, r.source, r.at, r.mobile,
                             tuple(sorted(events.get(r.session, []))))
                for r in records if isinstance(r, SessionStarted)]
    calls = [CallTrace(r.call_id, r.source, r.at, r.caller,
                       tuple((c.session, c.likelihood) for c in r.candidates))
             for r in records if isinstance(r, CallRecord) and r.source == sim.SOURCE]
    return sessions, calls


def test_at_the_recorded_size_the_replay_reproduces_the_live_attribution() -> None:
    pool = 10
    run = sim.run(pool)
    sessions, calls = _traces(run.records)
    plan = SitePlan("sim", (SourcePlan(sim.SOURCE, pool),))
    drawn = draw_callers(calls)
    got = replay(plan, sessions, calls, drawn)[sim.SOURCE]
    # The replay makes the live engine's choices, so a first-time caller's call is right with
    # the attached visitor's share of its candidates' likelihood; a repeat caller's call counts
    # the one drawn caller (their history shapes the scoring). Weighted by each call's total.
    right = weight = 0.0
    seen: set[str | None] = set()
    for r in run.records:
        if not isinstance(r, CallRecord) or r.source != sim.SOURCE:
            continue
        total = sum(c.likelihood for c in r.candidates)
        if r.caller is None or r.caller not in seen:
            right += sum(c.likelihood for c in r.candidates if c.visitor == r.visitor)
        else:
            caller = next(c.visitor for c in r.candidates if c.session == drawn[r.call_id])
            right += total * (caller == r.visitor)
        weight += total
        seen.add(r.caller)
    assert got.calls == len(calls) and got.weight == pytest.approx(weight)
    assert got.accuracy == pytest.approx(right / weight, abs=1e-9)
