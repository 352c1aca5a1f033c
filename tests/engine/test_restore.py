"""Restore from persisted states, reconfiguration, and forgetting old sessions."""

from __future__ import annotations

import pytest

from gateway.engine import CallState, SessionState, UnknownSession
from tests.engine.helpers import (
    ADS,
    DAY,
    ORGANIC,
    PHONE,
    ad_visit,
    config,
    engine,
    states_from_records,
)


def test_restored_engine_keeps_numbers_and_live_reservations() -> None:
    live = engine()
    gone = ad_visit(live, 0.0)  # ADS[0], expires at 1800
    held = ad_visit(live, 3000.0)  # ADS[1] (never used), live until 4800
    live.activity(session=held.session, kind="ping", at=3500.0)  # now until 5300
    ad_visit(live, 3100.0, click="x")  # ADS[2]
    records = live.drain()

    restored = engine(seed=99)
    assert restored.restore_sessions(states_from_records(records)) == 3
    assert restored.drain() == []
    assert restored.sessions_count() == 3
    assert [(p.reserved, p.cooling, p.free, p.live) for p in restored.pool_stats(at=5000.0)] == [
        (p.reserved, p.cooling, p.free, p.live) for p in live.pool_stats(at=5000.0)]

    back = ad_visit(restored, 5000.0, visitor=gone.visitor)
    assert back.number == gone.number == ADS[0]  # sticky after the restart
    fresh = ad_visit(restored, 5001.0)
    assert fresh.number == ADS[2]  # ADS[1] is still reserved by `held` until 5300
    assert restored.pool_stats(at=5001.0)[0].sharings == 0
    cont = ad_visit(restored, 5002.0, visitor=held.visitor)
    assert cont.session == held.session  # a live session continues after the restart


def test_restored_and_original_engines_agree_on_what_comes_next() -> None:
    a = engine()
    for i in range(8):
        v = ad_visit(a, i * 400.0)
        if i % 3 == 0:
            a.activity(session=v.session, kind="ping", at=i * 400.0 + 300)
    b = engine(seed=123)
    b.restore_sessions(states_from_records(a.drain()))
    for t in (3500.0, 3600.0, 3700.0, 9000.0):
        assert ad_visit(a, t).number == ad_visit(b, t).number


def test_restore_skips_unknown_site_source_or_number_and_duplicates() -> None:
    e = engine()
    states = [
        SessionState("s_ok_session_01", "v_visitor_0001", "acme", "Google Ads", ADS[0], 0.0,
                     10.0, True, False, 2, None, None),
        SessionState("s_ok_session_01", "v_visitor_0001", "acme", "Google Ads", ADS[0], 0.0,
                     10.0, True, False, 2, None, None),
        SessionState("s_other_site_01", "v_visitor_0002", "beta", "Google Ads", ADS[1], 0.0,
                     10.0, True, False, 1, None, None),
        SessionState("s_moved_number", "v_visitor_0003", "acme", "Google Ads", ORGANIC[0], 0.0,
                     10.0, True, False, 1, None, None),
        SessionState("s_no_such_numb", "v_visitor_0004", "acme", "Google Ads", "+14155550000",
                     0.0, 10.0, True, False, 1, None, None),
    ]
    assert e.restore_sessions(iter(states)) == 1
    assert e.sessions_count() == 1


def test_restored_calls_are_idempotent_and_feed_caller_history() -> None:
    a = engine()
    v = ad_visit(a, 0.0)
    first = a.call(to=ADS[0], caller="+14155559999", call_id="CA-r", at=60.0)
    records = a.drain()
    b = engine(seed=5)
    b.restore_sessions(states_from_records(records))
    assert b.restore_calls([CallState("CA-r", "acme", ADS[0], "+14155559999", 60.0,
                                      "Google Ads", first.match, first.visitor,
                                      first.likelihood)]) == 1
    again = b.call(to=ADS[0], caller="+14155559999", call_id="CA-r", at=61.0)
    assert (again.match, again.visitor, again.source, again.likelihood) == (
        first.match, first.visitor, first.source, first.likelihood)
    assert b.drain() == []
    later = b.call(to=ADS[0], caller="+14155559999", call_id="CA-r2", at=120.0)
    assert later.visitor == v.visitor


def test_reconfigure_keeps_state_for_what_still_exists() -> None:
    e = engine()
    ad = ad_visit(e, 0.0)
    organic = e.visit(site="acme", url="https://acme.test/", referrer="https://google.com/",
                      user_agent=PHONE, at=1.0)
    ad_visit(e, 2.0)
    ad_visit(e, 3.0)
    ad_visit(e, 4.0)  # a sharing
    cfg = config(numbers=[*ADS, "+14155550104"])
    del cfg["sites"][0]["sources"][1]  # drop Google Organic
    e.reconfigure(cfg)
    stats = e.pool_stats(at=5.0)
    assert [(p.source, p.numbers, p.sharings, p.sessions) for p in stats] == [
        ("Google Ads", 4, 1, 4)]
    e.activity(session=ad.session, kind="ping", at=10.0)
    with pytest.raises(UnknownSession):
        e.activity(session=organic.session, kind="ping", at=10.0)  # type: ignore[arg-type]
    assert ad_visit(e, 20.0).number == "+14155550104"  # the new, never used number
    assert ad_visit(e, DAY, visitor=ad.visitor).number == ad.number


def test_old_sessions_are_forgotten_after_their_retention() -> None:
    e = engine(_short_stickiness(config(match_window=DAY)))
    old = ad_visit(e, 0.0)
    for i in range(10):
        ad_visit(e, 3 * DAY + i)
    assert e.sessions_count() == 10
    with pytest.raises(UnknownSession):
        e.activity(session=old.session, kind="ping", at=3 * DAY + 20)
    back = ad_visit(e, 3 * DAY + 30, visitor=old.visitor)
    assert back.session is not None  # a new session; the visitor id is kept


def _short_stickiness(cfg: dict[str, object]) -> dict[str, object]:
    cfg["sites"][0]["stickiness_days"] = 1  # type: ignore[index]
    return cfg


def test_memory_stays_bounded_over_many_windows() -> None:
    e = engine(_short_stickiness(config(match_window=DAY, numbers=[ADS[0]])))
    for hour in range(24 * 20):
        ad_visit(e, hour * 3600.0)
    assert e.sessions_count() <= 2 * 24 + 8  # about one retention window of sessions
    call = e.call(to=ADS[0], caller=None, call_id="CA-late", at=24 * 20 * 3600.0)
    assert 0 < len(call.candidates) <= 25


def test_reconfigure_keeps_calls() -> None:
    e = engine()
    ad_visit(e, 0.0)
    first = e.call(to=ADS[0], caller="+14155559999", call_id="CA-k", at=10.0)
    e.reconfigure(config(numbers=[ADS[0]]))
    again = e.call(to=ADS[0], caller="+14155559999", call_id="CA-k", at=11.0)
    assert again == first
    assert e.override(call_id="CA-k", session=first.match or "").match == first.match
