"""engine.call(): candidates and their timelines, ranking, idempotency, offline and unknown
numbers, caller history, overrides."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.engine import (
    CallRecord,
    Engine,
    InvalidInput,
    MatchOverride,
    UnknownCall,
    UnknownNumber,
    UnknownSession,
)
from gateway.engine import calls as calls_module
from gateway.engine.timelines import build_timeline
from scoring import model
from scoring.features import CallContext, Timeline
from tests.engine.helpers import (
    ADS,
    BILLBOARD,
    BUSINESS,
    DAY,
    IDLE,
    ORGANIC,
    PHONE,
    ad_visit,
    config,
    engine,
)

CALLER = "+14155559999"


class Spy:
    """Wraps scoring.model.score, keeping what the engine asked."""

    def __init__(self, result: Any = None) -> None:
        self.seen: list[tuple[CallContext, list[Timeline]]] = []
        self.models: list[model.Model | None] = []
        self.result = result

    def __call__(self, ctx: CallContext, timelines: list[Timeline], **kw: Any) -> model.Scores:
        self.seen.append((ctx, list(timelines)))
        self.models.append(kw.get("model"))
        if self.result is not None:
            return self.result(timelines)  # type: ignore[no-any-return]
        return model.score(ctx, timelines, **kw)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    s = Spy()
    monkeypatch.setattr(calls_module, "score", s)
    return s


def test_call_attaches_best_candidate_with_full_timelines(spy: Spy) -> None:
    e = engine(config(numbers=[ADS[0]]))
    a = ad_visit(e, 0.0, ua=PHONE)
    e.activity(session=a.session, kind="pageview", at=60.0)
    e.activity(session=a.session, kind="hidden", at=90.0)
    b = ad_visit(e, 100.0)  # shares the only number with a
    e.activity(session=b.session, kind="click_to_call", at=150.0)
    c = e.call(to=ADS[0], caller=CALLER, call_id="CA1", at=155.0)
    assert (c.source, c.forward_to, c.site, c.call_id) == ("Google Ads", BUSINESS, "acme", "CA1")
    ctx, timelines = spy.seen[0]
    assert ctx == CallContext(155.0, CALLER, IDLE, False)
    by_session = {t.session: t for t in timelines}
    ta, tb = by_session[a.session], by_session[b.session]  # type: ignore[index]
    assert ta == Timeline(a.session, a.visitor, 0.0, 60.0, True, True, True, 2, None, 90.0,
                          1, 0, 1)  # type: ignore[arg-type]
    assert tb == Timeline(b.session, b.visitor, 100.0, 150.0, True, False, True, 1, 150.0,
                          None, 2, 0, 1)  # type: ignore[arg-type]
    assert c.match == b.session and c.visitor == b.visitor
    assert c.likelihood == c.candidates[0].likelihood
    assert c.candidates[0].session == b.session
    assert 0.0 <= c.candidates[-1].likelihood <= c.candidates[0].likelihood <= 1.0


def test_a_source_scores_with_its_profile(spy: Spy) -> None:
    """A source naming a scoring profile is scored with that profile's model, others with the
    packaged mixed one; the same visit then gets another likelihood."""
    likelihoods = []
    for profile in ("mixed", "late-callers"):
        e = engine(config(numbers=[ADS[0]], scoring=profile))
        a = ad_visit(e, 0.0)
        c = e.call(to=ADS[0], caller=CALLER, call_id="CA1", at=3 * 3600.0)
        assert c.match == a.session
        likelihoods.append(c.likelihood)
    assert spy.models == [None, model.profile("late-callers")]
    assert likelihoods[0] != likelihoods[1]


def test_candidates_are_those_shown_the_number_within_the_match_window(spy: Spy) -> None:
    e = engine(config(numbers=[ADS[0]], match_window=10 * DAY))
    old = ad_visit(e, 0.0)
    e.activity(session=old.session, kind="ping", at=1000.0)
    recent = ad_visit(e, 5 * DAY)
    ad_visit(e, 5 * DAY, click="other")  # same number too
    e.visit(site="acme", url="https://acme.test/", referrer="https://google.com/",
            user_agent=PHONE, at=5 * DAY)  # organic: another number
    inside = e.call(to=ADS[0], caller=None, call_id="CA-in", at=1000.0 + 10 * DAY)
    assert old.session in {x.session for x in inside.candidates}
    assert len(inside.candidates) == 3
    outside = e.call(to=ADS[0], caller=None, call_id="CA-out", at=1001.0 + 10 * DAY)
    assert {x.session for x in outside.candidates} == {
        recent.session, *[t.session for t in spy.seen[-1][1]]} - {old.session}
    assert len(outside.candidates) == 2


def test_no_candidate_means_source_only() -> None:
    e = engine()
    c = e.call(to=ADS[1], caller=CALLER, call_id="CA-none", at=10.0)
    assert (c.source, c.match, c.visitor, c.likelihood, c.candidates) == (
        "Google Ads", None, None, None, [])


def test_ties_break_by_recency_then_session_id(monkeypatch: pytest.MonkeyPatch) -> None:
    flat = Spy(lambda ts: model.Scores(tuple(0.1 for _ in ts), 1 - 0.1 * len(ts)))
    monkeypatch.setattr(calls_module, "score", flat)
    e = engine(config(numbers=[ADS[0]]))
    visits = [ad_visit(e, t) for t in (0.0, 0.0, 5.0, 0.0)]
    c = e.call(to=ADS[0], caller=None, call_id="CA-tie", at=10.0)
    expected = [visits[2].session, *sorted(v.session for v in (visits[0], visits[1], visits[3]))]
    assert [x.session for x in c.candidates] == expected
    assert c.match == visits[2].session


def test_candidate_list_is_capped() -> None:
    e = engine(config(numbers=[ADS[0]]))
    for i in range(calls_module.MAX_LISTED_CANDIDATES + 20):
        ad_visit(e, i * 10.0)
    c = e.call(to=ADS[0], caller=None, call_id="CA-many", at=5000.0)
    assert len(c.candidates) == calls_module.MAX_LISTED_CANDIDATES
    (record,) = [r for r in e.drain() if isinstance(r, CallRecord)]
    assert len(record.candidates) == calls_module.RECORDED_CANDIDATES
    assert record.candidates[0].session == c.candidates[0].session
    assert record.candidate_count == calls_module.MAX_LISTED_CANDIDATES + 20


def test_calls_are_idempotent_per_call_id() -> None:
    e = engine()
    ad_visit(e, 0.0)
    first = e.call(to=ADS[0], caller=CALLER, call_id="CA-dup", at=60.0)
    first.candidates.clear()  # the caller's copy: must not touch the engine's
    ad_visit(e, 70.0)
    again = e.call(to="(415) 555-0102", caller=None, call_id="CA-dup", at=90.0)
    assert again.match == first.match and len(again.candidates) == 1
    assert [type(r).__name__ for r in e.drain()].count("CallRecord") == 1


def test_offline_number() -> None:
    e = engine()
    c = e.call(to="415-555-0199", caller="(415) 555-9999", call_id="CA-off", at=1.0)
    assert (c.source, c.forward_to, c.match, c.visitor, c.likelihood, c.candidates) == (
        "Billboard I-80", BUSINESS, None, None, None, [])
    (record,) = e.drain()
    assert record == CallRecord("CA-off", "acme", "Billboard I-80", BILLBOARD, CALLER, BUSINESS,
                                1.0, None, None, None, ())


def test_unknown_inactive_and_invalid_numbers() -> None:
    e = engine(config(active=False))
    with pytest.raises(UnknownNumber) as caught:
        e.call(to="+14155550000", caller=None, call_id="CA-x", at=1.0)
    assert caught.value.status_hint == 404
    with pytest.raises(UnknownNumber, match="inactive"):
        e.call(to=ADS[0], caller=None, call_id="CA-y", at=1.0)
    with pytest.raises(UnknownNumber):
        e.call(to="sip:not-a-number@example.com", caller=None, call_id="CA-z", at=1.0)
    with pytest.raises(InvalidInput) as invalid:
        e.call(to=4155550101, caller=None, call_id="CA-z", at=1.0)  # type: ignore[arg-type]
    assert invalid.value.field == "to"
    with pytest.raises(InvalidInput):
        e.call(to=ADS[1], caller=None, call_id="", at=1.0)
    assert e.lookup(ADS[0]).active is False
    assert e.lookup(ORGANIC[0]).active is True
    with pytest.raises(UnknownNumber):
        e.lookup("+14155550000")
    assert e.drain() == []


def test_withheld_or_bogus_callers_are_none(spy: Spy) -> None:
    e = engine()
    ad_visit(e, 0.0)
    for i, caller in enumerate(("anonymous", "+266696687", "", "12")):
        e.call(to=ADS[0], caller=caller, call_id=f"CA-w{i}", at=10.0)
        assert spy.seen[-1][0].caller is None


def test_caller_history_feeds_later_timelines(spy: Spy) -> None:
    e = engine(config(numbers=[ADS[0]]))
    v = ad_visit(e, 0.0)
    first = e.call(to=ADS[0], caller=CALLER, call_id="CA-h1", at=30.0)
    assert first.visitor == v.visitor
    back = ad_visit(e, 2 * DAY, visitor=v.visitor)
    other = ad_visit(e, 2 * DAY + 5)
    e.call(to=ADS[0], caller=CALLER, call_id="CA-h2", at=2 * DAY + 60)
    ctx, timelines = spy.seen[-1]
    assert ctx.caller_seen_before
    got = {t.session: (t.caller_matches, t.visitor_sessions) for t in timelines}
    assert got[back.session] == (1, 2)  # type: ignore[index]
    assert got[v.session] == (1, 2)  # type: ignore[index]
    assert got[other.session] == (0, 1)  # type: ignore[index]


def test_timeline_cache_follows_session_changes(spy: Spy) -> None:
    e = engine(config(numbers=[ADS[0]]))
    v = ad_visit(e, 0.0)
    e.call(to=ADS[0], caller=None, call_id="CA-c1", at=10.0)
    e.activity(session=v.session, kind="click_to_call", at=20.0)
    e.call(to=ADS[0], caller=None, call_id="CA-c2", at=25.0)
    e.call(to=ADS[0], caller=None, call_id="CA-c3", at=3000.0)
    (t1,), (t2,), (t3,) = (timelines for _, timelines in spy.seen)
    assert t1.last_click_to_call is None and t2.last_click_to_call == 20.0
    assert t2.live and not t3.live


def test_fast_timeline_builder_equals_the_constructor() -> None:
    args = ("s_x", "v_y", 1.0, 2.0, True, False, True, 3, None, 1.5, 2, 1, 4)
    built = build_timeline(*args)  # type: ignore[arg-type]
    assert built == Timeline(*args)  # type: ignore[arg-type]
    assert repr(built) == repr(Timeline(*args))  # type: ignore[arg-type]
    assert hash(built) == hash(Timeline(*args))  # type: ignore[arg-type]


def test_override(monkeypatch: pytest.MonkeyPatch) -> None:
    e = engine(config(numbers=[ADS[0]]))
    a, b = ad_visit(e, 0.0), ad_visit(e, 50.0)
    organic = e.visit(site="acme", url="https://acme.test/", referrer="https://google.com/",
                      user_agent=PHONE, at=55.0)
    c = e.call(to=ADS[0], caller=CALLER, call_id="CA-o", at=60.0)
    e.drain()
    other = next(x for x in c.candidates if x.session != c.match)
    moved = e.override(call_id="CA-o", session=other.session, by="alice", at=100.0)
    assert (moved.match, moved.visitor, moved.likelihood) == (other.session, other.visitor,
                                                              other.likelihood)
    assert e.drain() == [MatchOverride("CA-o", other.session, other.visitor, c.match or "",
                                       "alice", 100.0)]
    assert e.override(call_id="CA-o", session=other.session).match == other.session
    assert e.drain() == []  # same choice again: nothing to record
    free = e.override(call_id="CA-o", session=organic.session)  # same site, not a candidate
    assert (free.match, free.likelihood) == (organic.session, None)
    (record,) = e.drain()
    assert isinstance(record, MatchOverride)
    assert (record.by, record.at, record.previous) == ("user", 100.0, other.session)
    assert e.call(to=ADS[0], caller=None, call_id="CA-o", at=1.0).match == organic.session
    with pytest.raises(UnknownCall):
        e.override(call_id="CA-missing", session=a.session)
    with pytest.raises(UnknownSession):
        e.override(call_id="CA-o", session="s_doesnotexist000")
    assert {a.session, b.session} >= {x.session for x in c.candidates}


def test_override_rejects_a_session_of_another_site() -> None:
    cfg = config(numbers=[ADS[0]])
    cfg["sites"].append({"key": "beta", "swap_targets": [BUSINESS], "sources": [
        {"name": "Direct", "kind": "online", "forward_to": BUSINESS,
         "numbers": ["+14155550121"]}]})
    e = Engine.from_config(cfg, seed=3)
    ad_visit(e, 0.0)
    stranger = e.visit(site="beta", url="https://beta.test/", referrer=None,
                       user_agent=PHONE, at=1.0)
    e.call(to=ADS[0], caller=None, call_id="CA-s", at=2.0)
    with pytest.raises(UnknownSession):
        e.override(call_id="CA-s", session=stranger.session)  # type: ignore[arg-type]


def test_a_visitor_with_two_sessions_is_ranked_by_their_sum(monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    """A return visit gives one person two sessions on the number: the call goes to the
    person with the largest summed likelihood, through their likeliest session."""
    e = engine(config(numbers=[ADS[0]]))
    first = ad_visit(e, 0.0)
    other = ad_visit(e, 10.0)
    again = ad_visit(e, 3 * IDLE, visitor=first.visitor)  # the same person, a new session
    assert again.session != first.session and again.number == ADS[0]
    fixed = {first.session: 0.25, again.session: 0.25, other.session: 0.4}

    def scores(timelines: list[Timeline]) -> model.Scores:
        values = tuple(fixed[t.session] for t in timelines)
        return model.Scores(values, 1.0 - sum(values))

    monkeypatch.setattr(calls_module, "score", Spy(scores))
    c = e.call(to=ADS[0], caller=CALLER, call_id="CA-sum", at=3 * IDLE + 60.0)
    assert c.visitor == first.visitor
    assert c.match in (first.session, again.session)
    assert c.likelihood == pytest.approx(0.5)
    assert [x.visitor for x in c.candidates] == [first.visitor, first.visitor, other.visitor]
    assert c.candidates[0].session == c.match
