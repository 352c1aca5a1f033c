"""The likelihood model on hand-built timelines with known answers."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

import pytest

from scoring import model
from scoring.features import CallContext, Timeline
from scoring.model import Params, ParamsError, load_params, score

AT = 1_704_067_200.0 + 14 * 3600
CTX = CallContext(at=AT, caller="+16502000001", idle_timeout=1800.0)


def tl(name: str, gap: float, **kw: object) -> Timeline:
    base = {"session": f"s_{name}", "visitor": f"v_{name}", "assigned_at": AT - gap - 60,
            "last_activity": AT - gap, "live": gap < 1800, "mobile": False, "shared": False}
    base.update(kw)
    return Timeline(**base)  # type: ignore[arg-type]


def test_live_session_with_click_to_call_beats_an_ended_one() -> None:
    tapped = tl("tap", 5, mobile=True, last_click_to_call=AT - 5)
    ended = tl("gone", 20 * 60, mobile=True)
    s = score(CTX, [ended, tapped])
    assert s.likelihoods[1] > 0.9 > s.likelihoods[0]


def test_likelihoods_and_none_sum_to_one() -> None:
    rng = random.Random(3)
    timelines = [tl(str(i), rng.expovariate(1 / 3600)) for i in range(50)]
    s = score(CTX, timelines)
    assert len(s.likelihoods) == 50
    assert sum(s.likelihoods) + s.none == pytest.approx(1.0)
    assert all(0.0 <= p <= 1.0 for p in s.likelihoods)


def test_no_candidates_means_none() -> None:
    assert score(CTX, []) == model.Scores((), 1.0)


@pytest.mark.parametrize("gaps", [(100, 600, 3600, 6 * 3600, 86_400, 20 * 86_400)])
def test_likelihood_falls_with_time_since_last_activity(gaps: tuple[float, ...]) -> None:
    s = score(CTX, [tl(str(g), g) for g in gaps])
    # Hours to two days is a plateau (late callers); the fit's monotone penalty allows only a
    # sliver of rise there.
    for newer, older in zip(s.likelihoods, s.likelihoods[1:], strict=False):
        assert older <= 1.05 * newer
    assert s.likelihoods[0] > 10 * s.likelihoods[-1]


def test_a_live_mobile_session_without_tap_or_hide_is_unlikely() -> None:
    quiet = tl("quiet", 10, mobile=True)
    hid = tl("hid", 10, mobile=True, hidden_at=AT - 2)
    s = score(CTX, [quiet, hid])
    assert s.likelihoods[1] > 3 * s.likelihoods[0]


def test_caller_history_decides_between_equals() -> None:
    ctx = replace(CTX, caller_seen_before=True)
    a, b = tl("a", 3 * 86_400), tl("b", 3 * 86_400, caller_matches=1)
    s = score(ctx, [a, b])
    assert s.likelihoods[1] > 0.9


def test_a_repeat_call_inherits_the_doubt_of_the_first() -> None:
    """The earlier attribution was right as often as its likelihood said: a match the first
    call was unsure of weighs less than one it was sure of."""
    ctx = replace(CTX, caller_seen_before=True)
    others = [tl(f"o{i}", 600 + 60 * i) for i in range(20)]
    odds = []
    for sure in (0.05, 0.3, 0.7, 0.99):
        s = score(ctx, [*others, tl("m", 2 * 86_400, caller_matches=1, caller_likelihood=sure)])
        odds.append(s.likelihoods[-1] / (1 - s.likelihoods[-1]))
    assert odds == sorted(odds)
    assert odds[-1] > 100 * odds[0]
    unknown = score(ctx, [*others, tl("m", 2 * 86_400, caller_matches=1)])  # confidence 1
    assert unknown.likelihoods[-1] >= s.likelihoods[-1]


def test_a_long_live_visit_calls_less_per_second_than_a_fresh_one() -> None:
    """A call during a visit falls anywhere in it: the longer the visit so far, the less
    likely this second (packaged parameters; the fit learns the slope)."""
    assert model.current().params.live_elapsed < 0
    fresh = tl("fresh", 5, assigned_at=AT - 40)
    long = tl("long", 5, assigned_at=AT - 3600)
    s = score(CTX, [fresh, long])
    assert s.likelihoods[0] > 1.5 * s.likelihoods[1]
    ended = [tl("a", 3600, assigned_at=AT - 3660), tl("b", 3600, assigned_at=AT - 7200)]
    s = score(CTX, ended)  # only a live visit's length counts
    assert s.likelihoods[0] == s.likelihoods[1]


def test_a_caller_known_to_someone_else_points_away_from_this_candidate() -> None:
    ctx = replace(CTX, caller_seen_before=True)
    s = score(ctx, [tl("a", 3 * 86_400), tl("b", 3 * 86_400, caller_matches=2)])
    fresh = score(CTX, [tl("a", 3 * 86_400), tl("b", 3 * 86_400)])
    assert s.likelihoods[0] < fresh.likelihoods[0]


def test_exposure_raises_none() -> None:
    few = score(CTX, [tl(str(i), 20 * 86_400) for i in range(2)])
    many = score(CTX, [tl(str(i), 20 * 86_400) for i in range(200)])
    # a candidate's odds against "none" fall as more people were shown the number
    assert many.likelihoods[0] / many.none < few.likelihoods[0] / few.none


def test_two_live_sessions_split_the_call() -> None:
    s = score(CTX, [tl("a", 10), tl("b", 10)])
    assert s.likelihoods[0] == pytest.approx(s.likelihoods[1])


def _random_timeline(rng: random.Random, i: int) -> Timeline:
    gap = rng.choice([0.0, -1.0, rng.uniform(0, 90), rng.expovariate(1 / 7200),
                      rng.uniform(0, 90 * 86_400)])
    return tl(
        str(i), gap, mobile=rng.random() < 0.5, shared=rng.random() < 0.3,
        pageviews=rng.choice([0, 1, 2, 5, 29, 30, 31, 400]),
        last_click_to_call=rng.choice([None, AT - rng.uniform(0, 40), AT - rng.uniform(0, 4000)]),
        hidden_at=rng.choice([None, AT - rng.uniform(0, 40), AT - rng.uniform(0, 4000)]),
        caller_matches=rng.choice([0, 0, 1, 3]), visitor_sessions=rng.choice([1, 1, 2, 5]),
        caller_likelihood=rng.choice([0.0, 1.0, rng.random()]),
        assigned_at=AT - gap - rng.choice([0.0, -5.0, rng.uniform(0, 4000)]),
    )


@pytest.mark.parametrize("seed", range(5))
def test_fast_score_equals_the_reference_formula(seed: int) -> None:
    rng = random.Random(seed)
    ctx = replace(CTX, caller_seen_before=rng.random() < 0.5,
                  caller=None if rng.random() < 0.3 else CTX.caller)
    timelines = [_random_timeline(rng, i) for i in range(200)]
    params = model.current().params
    logs = [model.log_weight_reference(params, ctx, t) for t in timelines]
    log_none = model.log_none_reference(params, ctx, len(timelines))
    top = max([log_none, *logs])
    z = sum(math.exp(v - top) for v in logs) + math.exp(log_none - top)
    s = score(ctx, timelines)
    for got, want in zip(s.likelihoods, logs, strict=True):
        assert got == pytest.approx(math.exp(want - top) / z, rel=1e-9, abs=1e-300)
    assert s.none == pytest.approx(math.exp(log_none - top) / z, rel=1e-9)


def test_params_file_is_versioned_and_round_trips() -> None:
    params = load_params()
    assert params.version == model.PARAMS_VERSION
    again = Params.from_json(json.loads(json.dumps(params.to_json())))
    assert again == params


@pytest.mark.parametrize(
    "mangle",
    [lambda d: d.update(version=999), lambda d: d.pop("flags"),
     lambda d: d["recency"].update(knots_s=[3, 2, 1])],
)
def test_bad_params_are_refused(mangle: object) -> None:
    data = load_params().to_json()
    mangle(data)  # type: ignore[operator]
    with pytest.raises(ParamsError):
        Params.from_json(data)


def test_scoring_profiles_are_packaged_and_load() -> None:
    names = model.profile_names()
    assert names[0] == model.MIXED and {"default", "late-callers"} <= set(names)
    assert model.profile(model.MIXED) is None  # the packaged params.json, swappable by `use`
    for name in names[1:]:
        m = model.profile(name)
        assert m is not None and m.params.version == model.PARAMS_VERSION
        assert model.profile(name) is m  # compiled once
    with pytest.raises(ParamsError, match="no scoring profile"):
        model.profile("b2b")


def test_late_callers_profile_gives_a_visit_hours_ago_more_of_the_call() -> None:
    """Fitted on traffic whose callers often call hours after the visit, the late-callers
    profile weighs a visit that ended three hours ago more, against one that ended two
    minutes ago, than the profile fitted on the default traffic does."""
    pair = [tl("recent", 120), tl("old", 3 * 3600)]

    def odds(m: model.Model | None) -> float:
        s = score(CTX, pair, model=m)
        return s.likelihoods[1] / s.likelihoods[0]

    assert odds(model.profile("late-callers")) > 2 * odds(model.profile("default"))


def test_use_swaps_the_model_for_a_block() -> None:
    params = load_params()
    flat = replace(params, recency=tuple(0.0 for _ in params.recency))
    before = score(CTX, [tl("a", 120), tl("b", 86_400)])
    with model.use(flat):
        during = score(CTX, [tl("a", 120), tl("b", 86_400)])
    assert during.likelihoods[0] == pytest.approx(during.likelihoods[1])
    assert score(CTX, [tl("a", 120), tl("b", 86_400)]) == before
