"""Pool-sizing advice against published Erlang B tables, and the verdict's hysteresis."""

from __future__ import annotations

import pytest

from gateway.store.reports import Period, hour_exposure, reserved_by_hour
from scoring import sizing
from scoring.erlang import erlang_b
from scoring.sizing import FEWER, MORE, RIGHT, Traffic, advise, busy_hour, verdict


@pytest.mark.parametrize(("load", "target", "pool"), [
    (10.0, 0.01, 18),  # published: 10 erlangs at 1% -> 18 lines
    (100.0, 0.01, 117),  # published: 100 erlangs at 1% -> 117 lines
    (5.0, 0.02, 10),  # standard table: 5 erlangs at 2% -> 10 lines
    (20.0, 0.05, 26),  # standard table: 20 erlangs at 5% -> 26 lines
    (2.0, 0.02, 6),  # standard table: 2 erlangs at 2% -> 6 lines
    (0.0, 0.02, 1),  # no traffic still leaves one number to show
])
def test_recommended_pool_matches_erlang_b_tables(load: float, target: float, pool: int) -> None:
    assert sizing.recommended_pool(load, target) == pool


def test_advice_sizes_on_peak_sessions_times_reservation() -> None:
    # 40 new sessions an hour holding a number 15 min each: 10 erlangs; at 1% -> 18 numbers.
    a = advise(Traffic(pool=18, peak_hour_sessions=40, mean_reservation_s=900), 0.01)
    assert a.load == pytest.approx(10.0)
    assert (a.recommended, a.verdict, a.change) == (18, RIGHT, 0)
    assert a.blocking == pytest.approx(erlang_b(18, 10.0)) and a.blocking <= 0.01
    assert a.reason == ("40 new sessions in the peak hour each held a number 15 min on average "
                        "(10.0 erlangs): 18 numbers keep sharing at 0.7%, within the 1% target.")


@pytest.mark.parametrize(("pool", "expected"), [
    (1, (MORE, 17)), (17, (MORE, 1)), (18, (RIGHT, 0)), (20, (RIGHT, 0)), (27, (RIGHT, 0)),
    (28, (FEWER, -10)), (117, (FEWER, -99)),
])
def test_verdict_band_around_the_recommendation(pool: int, expected: tuple[str, int]) -> None:
    assert verdict(pool, 18) == expected  # fewer only past 1.5 x 18 = 27


@pytest.mark.parametrize(("pool", "recommended", "expected"), [
    (3, 1, RIGHT), (4, 1, FEWER), (4, 2, RIGHT), (5, 2, FEWER), (1, 2, MORE),
])
def test_small_pools_do_not_flap_on_one_number(pool: int, recommended: int,
                                                expected: str) -> None:
    assert verdict(pool, recommended)[0] == expected  # more than 2 numbers over, too


def test_reasons_say_what_to_do_and_why() -> None:
    more = advise(Traffic(pool=5, peak_hour_sessions=40, mean_reservation_s=900), 0.02)
    assert (more.verdict, more.change) == (MORE, 12)  # table: 10 erlangs at 2% -> 17 lines
    assert "5 numbers leave 56.4% of new visitors sharing, over the 2% target; 17 bring it " \
        "to 1.3%" in more.reason
    fewer = advise(Traffic(pool=60, peak_hour_sessions=40, mean_reservation_s=900), 0.02)
    assert (fewer.verdict, fewer.change) == (FEWER, -43)
    assert "17 numbers already keep sharing at 1.3% (target 2%), and 60 is more than 1.5 " \
        "times that" in fewer.reason
    idle = advise(Traffic(pool=6, peak_hour_sessions=0, mean_reservation_s=1800), 0.02)
    assert (idle.verdict, idle.change) == (RIGHT, 0) and "nothing to size" in idle.reason
    for a in (more, fewer, idle):
        assert a.reason.endswith(".") and a.reason.count(". ") == 0  # one sentence


def test_strong_disagreement_between_measured_and_predicted_is_reported() -> None:
    calm = Traffic(pool=18, peak_hour_sessions=40, mean_reservation_s=900)
    agree = advise(Traffic(18, 40, 900, measured_blocking=0.01, peak_arrivals=400), 0.01)
    bursty = advise(Traffic(18, 40, 900, measured_blocking=0.08, peak_arrivals=400), 0.01)
    few = advise(Traffic(18, 40, 900, measured_blocking=0.2, peak_arrivals=10), 0.01)
    assert advise(calm, 0.01).reason == agree.reason == few.reason
    assert "but 8.0% of new visitors at the peak hour really shared, against 0.7% predicted" \
        in bursty.reason
    swamped = advise(Traffic(8, 40, 900, measured_blocking=0.9, peak_arrivals=400), 0.01)
    assert "90.0% of new visitors at the peak hour really shared, against 33.8% predicted, " \
        "because past its capacity a pool snowballs" in swamped.reason
    quiet = advise(Traffic(30, 100, 900, measured_blocking=0.0, peak_arrivals=2000), 0.05)
    assert "only 0.0% against 5.3% predicted" in quiet.reason


def test_guideline_is_one_number_per_20_daily_visitors() -> None:
    assert [sizing.guideline_pool(v) for v in (0, 1, 20, 21, 400, 401.5)] == [1, 1, 1, 2, 20, 21]


def test_busy_hour_is_time_consistent_over_the_busier_half_of_the_days() -> None:
    rows = [  # (day, hour, sessions, fresh, blocked): hour 14 is the busy hour overall
        {"day": 0, "hour": 14, "sessions": 10, "fresh": 9, "blocked": 1},
        {"day": 1, "hour": 14, "sessions": 30, "fresh": 25, "blocked": 5},
        {"day": 2, "hour": 14, "sessions": 20, "fresh": 20, "blocked": 0},
        {"day": 2, "hour": 9, "sessions": 45, "fresh": 45, "blocked": 9},  # one spike
        {"day": 3, "hour": 14, "sessions": 40, "fresh": 30, "blocked": 3},
    ]
    busy = busy_hour(rows, day_buckets=4)
    assert (busy.hour, busy.sessions, busy.fresh, busy.blocked) == (14, 35.0, 55, 8)
    assert busy_hour(rows, day_buckets=7).sessions == pytest.approx((40 + 30 + 20 + 10) / 4)
    assert busy_hour([], 7).hour is None


def test_reserved_by_hour_divides_by_the_hours_the_period_covers() -> None:
    day = 86_400.0
    assert hour_exposure(0.0, 2 * day) == [7200.0] * 24
    partial = hour_exposure(3600.0 * 22.5, day + 3600.0)  # 22:30 to 01:00 next day
    assert partial[22] == 1800 and partial[23] == 3600 and partial[0] == 3600
    assert sum(partial) == pytest.approx(2.5 * 3600)
    seconds = [0.0] * 24
    seconds[14] = 2 * 3 * 3600.0  # 3 numbers reserved through 14:00-15:00 on both days
    assert reserved_by_hour(seconds, Period(0.0, 2 * day))[14] == 3.0
