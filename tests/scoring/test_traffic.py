"""The traffic generator: determinism and the documented shape of the traffic."""

from __future__ import annotations

from collections import Counter

import pytest

from scoring.traffic import (
    AFTER,
    DURING,
    LATE,
    LATE_RETURN,
    NOISE,
    SCENARIOS,
    Traffic,
    diurnal_weights,
    generate,
    scenario,
)


@pytest.fixture(scope="module")
def week() -> Traffic:
    return generate(scenario("default", call_rate=0.2), 7, seed=5)


def test_same_seed_same_traffic() -> None:
    a, b = generate(scenario("default"), 2, 9), generate(scenario("default"), 2, 9)
    assert a == b
    assert generate(scenario("default"), 2, 10) != a


def test_diurnal_peak_hour_carries_twelve_percent() -> None:
    w = diurnal_weights(0.12, 14)
    assert sum(w) == pytest.approx(1.0)
    assert max(w) == pytest.approx(0.12, abs=1e-6)
    assert w.index(max(w)) == 14


def test_daily_visitors_and_weekends(week: Traffic) -> None:
    firsts = [s for s in week.sessions if not s.returning]
    by_day = Counter(int((s.start - week.sessions[0].start) // 86_400) for s in firsts)
    assert 900 < by_day[1] < 1100
    assert by_day[5] < 0.8 * by_day[1]


def test_call_classes_follow_the_model(week: Traffic) -> None:
    kinds = Counter(c.kind for c in week.calls)
    first = kinds[DURING] + kinds[AFTER] + kinds[LATE] + kinds[LATE_RETURN]
    assert kinds[DURING] / first == pytest.approx(0.5, abs=0.06)
    assert kinds[AFTER] / first == pytest.approx(1 / 3, abs=0.06)
    assert 0 < kinds[NOISE] < 0.1 * sum(kinds.values())


def test_mobile_callers_during_the_visit_hide_the_tab_first(week: Traffic) -> None:
    sessions = week.sessions
    during = [c for c in week.calls if c.kind == DURING and sessions[c.anchor].mobile]
    assert during
    for c in during:
        s = sessions[c.anchor]
        assert any(k == "hidden" and 0 < c.at - at <= 3 for at, k in s.events)
    tapped = sum(any(k == "click_to_call" and 0 < c.at - at <= 10 for at, k in
                     sessions[c.anchor].events) for c in during)
    assert tapped / len(during) == pytest.approx(0.85, abs=0.1)


def test_scenarios_differ_in_length_delay_and_mobile_share() -> None:
    d = SCENARIOS["default"]
    assert SCENARIOS["long-sessions"].session_median_s > d.session_median_s
    assert SCENARIOS["late-callers"].p_during < d.p_during
    assert SCENARIOS["mobile-heavy"].mobile_share > d.mobile_share
    assert SCENARIOS["desktop-short"].mobile_share < d.mobile_share
    with pytest.raises(KeyError):
        scenario("nope")
