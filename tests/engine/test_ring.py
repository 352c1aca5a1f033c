"""The rotation ring: LRU order, idle release, stickiness, overflow policies, sharing counts."""

from __future__ import annotations

from collections import Counter

from gateway.engine import Engine, SessionEvent, SessionStarted
from tests.engine.helpers import ADS, BUSINESS, DAY, IDLE, PHONE, ad_visit, config, engine


def stats(e: Engine, at: float) -> tuple[int, int, int, int]:
    p = e.pool_stats(at=at)[0]
    assert p.source == "Google Ads"
    return p.reserved, p.cooling, p.free, p.sharings


def test_new_sessions_get_the_number_free_longest_ties_in_config_order() -> None:
    e = engine()
    a, b, c = (ad_visit(e, t) for t in (0.0, 10.0, 20.0))
    assert [a.number, b.number, c.number] == ADS
    e.activity(session=b.session, kind="ping", at=500.0)  # b releases last: 2300
    assert stats(e, 1000.0) == (3, 0, 0, 0)
    later = [ad_visit(e, 3000.0 + i).number for i in range(3)]
    assert later == [ADS[0], ADS[2], ADS[1]]  # released at 1800, 1820, 2300


def test_lru_spreads_visitors_evenly_across_a_day() -> None:
    e = engine()
    shown = Counter(ad_visit(e, minute * 60.0).number for minute in range(0, 24 * 60, 17))
    assert set(shown) == set(ADS)
    assert max(shown.values()) - min(shown.values()) <= 1
    assert stats(e, DAY)[3] == 0


def test_no_sharing_while_a_free_number_exists_then_share_the_idle_longest() -> None:
    e = engine()
    a, b, c = (ad_visit(e, t) for t in (0.0, 1.0, 2.0))
    assert len({a.number, b.number, c.number}) == 3
    for s in (a.session, c.session):
        e.activity(session=s, kind="ping", at=100.0)
    e.drain()
    d = ad_visit(e, 200.0)
    assert d.number == b.number  # b's holder has been idle the longest
    assert stats(e, 200.0) == (3, 0, 0, 1)
    started, shared = e.drain()
    assert isinstance(started, SessionStarted) and started.shared
    assert shared == SessionEvent(b.session, "shared", 200.0)  # type: ignore[arg-type]
    p = e.pool_stats(at=200.0)[0]
    assert (p.live, p.sessions, p.overflowed) == (4, 4, 0)


def test_idle_release_pings_extend_hidden_does_not() -> None:
    e = engine(config(numbers=[ADS[0]], overflow="site_number"))
    a = ad_visit(e, 0.0)
    e.activity(session=a.session, kind="ping", at=1000.0)  # reserved until 2800
    e.activity(session=a.session, kind="hidden", at=1500.0)  # does not extend
    assert stats(e, 2799.0) == (1, 0, 0, 0)
    assert ad_visit(e, 2799.0).session is None  # still reserved: the site's number
    assert stats(e, 2800.0) == (0, 1, 0, 0)  # released, cooling for one idle timeout
    assert stats(e, 2800.0 + IDLE) == (0, 0, 1, 0)
    b = ad_visit(e, 2800.0)
    assert (b.number, b.session is not None) == (ADS[0], True)
    assert stats(e, 2800.0)[3] == 0


def test_click_to_call_and_pageview_extend() -> None:
    e = engine(config(numbers=[ADS[0]], overflow="site_number"))
    a = ad_visit(e, 0.0)
    e.activity(session=a.session, kind="pageview", at=600.0)
    e.activity(session=a.session, kind="click_to_call", at=1200.0)
    assert ad_visit(e, 2999.0).session is None
    assert ad_visit(e, 3000.0).number == ADS[0]


def test_overflow_number_policy_tracks_sessions_on_it() -> None:
    extra = "+14155550150"
    e = engine(config(numbers=[ADS[0]], overflow="overflow_number", overflow_number=extra))
    a, b, c = (ad_visit(e, t) for t in (0.0, 1.0, 2.0))
    assert (a.number, b.number, c.number) == (ADS[0], extra, extra)
    assert b.session is not None and c.session is not None
    p = e.pool_stats(at=3.0)[0]
    assert (p.overflowed, p.sharings, p.live, p.reserved) == (2, 1, 3, 1)
    call = e.call(to=extra, caller=None, call_id="CA-overflow", at=10.0)
    assert {x.session for x in call.candidates} == {b.session, c.session}
    assert e.lookup(extra).source == "Google Ads"


def test_site_number_policy_creates_no_session() -> None:
    e = engine(config(numbers=[ADS[0]], overflow="site_number"))
    ad_visit(e, 0.0)
    e.drain()
    v = ad_visit(e, 1.0, visitor="v_second_visitor")
    assert (v.session, v.number, v.source, v.visitor) == (None, BUSINESS, None,
                                                          "v_second_visitor")
    assert e.drain() == []
    assert e.pool_stats(at=1.0)[0].overflowed == 1


def test_returning_visitor_gets_the_same_number() -> None:
    e = engine()
    v = ad_visit(e, 0.0)
    assert v.number == ADS[0]
    others = [ad_visit(e, 5000.0 + i).number for i in range(2)]  # take ADS[1], ADS[2]
    assert others == [ADS[1], ADS[2]]
    back = ad_visit(e, DAY, visitor=v.visitor)
    assert back.number == ADS[0] and back.session != v.session
    started = [r for r in e.drain() if isinstance(r, SessionStarted)]
    assert started[-1].returning and not started[0].returning


def test_stickiness_is_per_source_and_bounded_by_the_window() -> None:
    e = engine()
    v = ad_visit(e, 0.0)
    organic = e.visit(site="acme", url="https://acme.test/", referrer="https://google.com/",
                      user_agent=PHONE, visitor=v.visitor, at=DAY)
    assert organic.source == "Google Organic"
    again = ad_visit(e, 2 * DAY, visitor=v.visitor)
    assert again.number == v.number == ADS[0]
    ad_visit(e, 3 * DAY)  # someone else takes ADS[1] (never used: free the longest)
    late = ad_visit(e, 2 * DAY + 31 * DAY, visitor=v.visitor)
    assert late.number == ADS[2]  # past 30 days: the LRU number, not the sticky one


def test_sticky_number_held_by_someone_else_is_a_counted_sharing() -> None:
    e = engine(config(numbers=ADS[:2]))
    v = ad_visit(e, 0.0)  # ADS[0]
    w = ad_visit(e, 10.0)  # ADS[1]
    x = ad_visit(e, 2000.0)  # ADS[0] again (released at 1800, before ADS[1])
    assert (v.number, w.number, x.number) == (ADS[0], ADS[1], ADS[0])
    back = ad_visit(e, 2100.0, visitor=v.visitor)  # ADS[1] is free, but v had ADS[0]
    assert back.number == ADS[0]
    assert stats(e, 2100.0)[3] == 1


def test_live_visitor_continues_the_session_and_keeps_first_touch() -> None:
    e = engine()
    v = ad_visit(e, 0.0)
    e.drain()
    again = e.visit(site="acme", url="https://acme.test/contact", referrer="https://bing.com/",
                    user_agent=PHONE, visitor=v.visitor, at=600.0)
    assert (again.session, again.number, again.source) == (v.session, v.number, "Google Ads")
    assert e.drain() == [SessionEvent(v.session, "pageview", 600.0)]  # type: ignore[arg-type]
    assert stats(e, 2399.0)[0] == 1  # the pageview extended the reservation


def test_activity_after_release_revives_and_counts_the_sharing() -> None:
    e = engine(config(numbers=[ADS[0]]))
    a = ad_visit(e, 0.0)
    b = ad_visit(e, 2000.0)  # a expired at 1800: b gets the number without sharing
    assert b.number == a.number and stats(e, 2000.0)[3] == 0
    e.drain()
    e.activity(session=a.session, kind="ping", at=2100.0)  # a's tab was still open
    assert stats(e, 2100.0)[3] == 1
    assert e.drain() == [
        SessionEvent(b.session, "shared", 2100.0),  # type: ignore[arg-type]
        SessionEvent(a.session, "shared", 2100.0),  # type: ignore[arg-type]
        SessionEvent(a.session, "ping", 2100.0),  # type: ignore[arg-type]
    ]
