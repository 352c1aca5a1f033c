"""Scale-out at the engine: `own_numbers` (a process hands out only the numbers it leases) and
`absorb` (what the other processes recorded, applied without records)."""

from __future__ import annotations

import random

from gateway.engine import Engine, SessionEvent, SessionStarted, SessionState
from gateway.engine.records import CallRecord, CallState, Record
from tests.engine.helpers import (
    ADS,
    BUSINESS,
    DESKTOP,
    IDLE,
    ORGANIC,
    PHONE,
    ad_visit,
    config,
    engine,
)


def replicate(records: list[Record], to: Engine) -> tuple[int, int, int]:
    """What the store does between processes: session rows as inserted (before any event),
    then the events, then the calls."""
    starts = [SessionState(r.session, r.visitor, r.site, r.source, r.number, r.at, r.at,
                           r.mobile, r.shared, 1, None, None)
              for r in records if isinstance(r, SessionStarted)]
    events = [(r.session, r.kind, r.at) for r in records if isinstance(r, SessionEvent)]
    calls = [CallState(r.call_id, r.site, r.to, r.caller, r.at, r.source, r.match, r.visitor,
                       r.likelihood) for r in records if isinstance(r, CallRecord)]
    return to.absorb(starts, events, calls)


def test_an_engine_hands_out_only_the_numbers_it_owns() -> None:
    e = engine()
    e.own_numbers([ADS[1], ADS[2]])
    numbers = [ad_visit(e, at=float(i)).number for i in range(2)]
    assert sorted(numbers) == [ADS[1], ADS[2]]
    # Both owned numbers are reserved: "share" shares one of them, never the third number.
    assert ad_visit(e, at=3.0).number in (ADS[1], ADS[2])
    assert e.owned_numbers() == frozenset({ADS[1], ADS[2]})
    stats = {p.source: p for p in e.pool_stats()}
    assert stats["Google Ads"].owned == 2 and stats["Google Organic"].owned == 0


def test_owning_none_of_a_pool_shows_the_site_number_not_a_number_owned_elsewhere() -> None:
    e = engine()
    e.own_numbers([])
    v = ad_visit(e, at=1.0)
    assert v.session is None and v.number == BUSINESS
    e.own_numbers(None)  # back to one process: every number
    assert ad_visit(e, at=2.0).number == ADS[0]


def test_ownership_survives_a_reconfiguration() -> None:
    e = engine()
    e.own_numbers([ADS[2]])
    e.reconfigure(config(idle_timeout=600))
    assert ad_visit(e, at=1.0).number == ADS[2]


def test_a_returning_visitor_keeps_a_number_owned_by_another_process() -> None:
    a, b = engine(seed=1), engine(seed=2)
    a.own_numbers([ADS[0]])
    b.own_numbers([ADS[1], ADS[2]])
    first = ad_visit(a, at=0.0)
    replicate(a.drain(), b)
    again = ad_visit(b, at=3 * IDLE, visitor=first.visitor)  # a new session, on b
    assert again.session != first.session and again.number == ADS[0]
    # b now counts the number as reserved by that visitor, as a would.
    replicate(b.drain(), a)
    assert {p.source: p.reserved for p in a.pool_stats(3 * IDLE + 1)}["Google Ads"] == 1


def test_absorbed_sessions_and_events_are_call_candidates_and_make_no_records() -> None:
    a, b = engine(seed=1), engine(seed=2)
    v = ad_visit(a, at=0.0, ua=PHONE)
    a.activity(session=v.session, kind="click_to_call", at=50.0)
    assert replicate(a.drain(), b) == (1, 1, 0)
    assert b.drain() == []
    here = a.call(to=v.number, caller="+14155559999", call_id="CA1", at=60.0)
    there = b.call(to=v.number, caller="+14155559999", call_id="CA2", at=60.0)
    assert there.match == v.session == here.match
    assert there.candidates == here.candidates and there.likelihood == here.likelihood
    # Absorbing the same rows again changes nothing.
    assert b.absorb([SessionState(v.session, v.visitor, "acme", "Google Ads", v.number, 0.0,
                                  0.0, True, False, 1, None, None)]) == (0, 0, 0)


def test_a_call_on_any_process_is_attributed_as_one_process_would() -> None:
    """Random traffic spread over three engines that replicate to each other after every step:
    every call gets the same match, likelihood and candidates on each of them as on an engine
    rebuilt from all the records (the single-process state)."""
    rng = random.Random(11)
    cfg = config(numbers=[f"+1415555{n:04d}" for n in range(200, 206)])
    procs = [engine(cfg, seed=s) for s in (1, 2, 3)]
    pool = cfg["sites"][0]["sources"][0]["numbers"]
    for i, p in enumerate(procs):
        p.own_numbers(pool[i::3])
    everything: list[Record] = []
    visitors: list[str] = []
    sessions: list[str] = []
    handed: dict[str, list[tuple[int, float]]] = {}
    at = 0.0
    for _ in range(400):
        at += rng.expovariate(1 / 20.0)
        i = rng.randrange(3)
        p = procs[i]
        roll = rng.random()
        if roll < 0.55 or not sessions:
            returning = rng.choice(visitors) if visitors and roll < 0.1 else None
            v = ad_visit(p, at=at, visitor=returning, click=str(rng.randrange(9)),
                         ua=rng.choice((DESKTOP, PHONE)))
            if v.session is not None and returning is None:
                handed.setdefault(v.number, []).append((i, at))
                visitors.append(v.visitor)
                sessions.append(v.session)
        else:
            p.activity(session=rng.choice(sessions[-30:]),
                       kind=rng.choice(("pageview", "ping", "click_to_call", "hidden")), at=at)
        records = p.drain()
        everything += records
        for other in procs:
            if other is not p:
                replicate(records, other)
    # Each new visitor got a number from the process that owns it.
    for number, uses in handed.items():
        assert {i for i, _ in uses} == {pool.index(number) % 3}
    single = engine(cfg, seed=9)
    from tests.engine.helpers import states_from_records

    single.restore_sessions(states_from_records(everything))
    for k, number in enumerate(pool):
        results = [p.call(to=number, caller=f"+1650555{k:04d}", call_id=f"CA{k}", at=at + 5)
                   for p in (*procs, single)]
        assert results[0].candidates, number
        for r in results[1:]:
            assert (r.match, r.likelihood, r.candidates) == (
                results[0].match, results[0].likelihood, results[0].candidates)


def test_a_process_out_of_free_numbers_asks_and_another_lends_its_longest_free() -> None:
    a, b = engine(seed=1), engine(seed=2)
    a.own_numbers([ADS[0], *ORGANIC])
    b.own_numbers([ADS[1], ADS[2]])
    landing = {"site": "acme", "url": "https://acme.test/?gclid=z",
               "referrer": "https://www.google.com/", "user_agent": DESKTOP}
    assert a.short_source(**landing, at=0.0) is None  # ADS[0] is free
    ad_visit(a, at=0.0)
    a.drain()
    assert a.short_source(**landing, at=1.0) == "Google Ads"
    assert a.drain() == []  # asking changed nothing and recorded nothing
    assert a.short_source(**landing, at=1.0) == "Google Ads"
    # Other landings of a short site: organic has free numbers, bots never get one.
    assert a.short_source(site="acme", url="https://acme.test/",
                          referrer="https://www.google.com/", user_agent=DESKTOP, at=1.0) is None
    bot = {**landing, "user_agent": "Googlebot/2.1"}
    assert a.short_source(**bot, at=1.0) is None
    ad_visit(b, at=0.5)  # b hands out ADS[1]; ADS[2] stays free
    lent = b.lend(site="acme", source="Google Ads", at=1.0)
    assert lent == ADS[2] and b.owned_numbers() == frozenset({ADS[1]})
    assert b.lend(site="acme", source="Google Ads", at=1.0) is None  # nothing free left
    a.own_numbers([ADS[0], *ORGANIC, lent])
    assert ad_visit(a, at=1.0).number == ADS[2]
    assert a.reserved(ADS, at=2.0) == frozenset({ADS[0], ADS[2]})
    assert b.reserved(ADS, at=2.0) == frozenset({ADS[1]})


def test_owning_every_number_is_never_short() -> None:
    e = engine()
    for i in range(5):
        ad_visit(e, at=float(i))
    assert e.short_source(site="acme", url="https://acme.test/?gclid=q", at=9.0) is None
