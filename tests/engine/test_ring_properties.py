"""Property-based test of the ring's invariants against a small reference model.

Random sequences of new visits, returning visits, activity and time advances; after every step:
- a new session never gets a number another live session holds while a pool number is free
  (sticky returns and revivals may share, and are counted);
- every live session holds exactly one number, and the pool's reserved count is the number of
  distinct pool numbers live sessions hold;
- reserved + cooling + free == numbers; live and sharing counts match the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.helpers import ADS, IDLE, ad_visit, config, engine

EXTEND = ("pageview", "ping", "click_to_call")


@dataclass
class Model:
    """What the test itself knows: each session's number and last extending activity."""

    number: dict[str, str] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    visitor_latest: dict[str, str] = field(default_factory=dict)  # visitor -> session
    sharings: int = 0

    def live(self, now: float) -> list[str]:
        return [s for s, t in self.last.items() if t + IDLE > now]

    def held(self, now: float) -> set[str]:
        return {self.number[s] for s in self.live(now)}


ops = st.lists(st.one_of(
    st.tuples(st.just("new"), st.integers(0, 0)),
    st.tuples(st.just("return"), st.integers(0, 50)),
    st.tuples(st.sampled_from((*EXTEND, "hidden")), st.integers(0, 50)),
    st.tuples(st.just("wait"), st.integers(1, 4000)),
), max_size=120)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(pool=st.integers(1, 4), steps=ops)
def test_ring_invariants(pool: int, steps: list[tuple[str, int]]) -> None:
    e = engine(config(numbers=[*ADS, "+14155550104"][:pool]))
    numbers = e.site("acme").sources[0].numbers
    m = Model()
    sessions: list[str] = []
    visitors: list[str] = []
    now = 0.0
    for op, arg in steps:
        if op == "wait":
            now += arg
        elif op == "new":
            free_before = set(numbers) - m.held(now)
            v = ad_visit(e, now)
            assert v.session is not None and v.number in numbers
            if free_before:
                assert v.number in free_before, "shared while a free number existed"
            elif v.number in m.held(now):
                m.sharings += 1
            _started(m, sessions, visitors, v, now)
        elif op == "return" and visitors:
            visitor = visitors[arg % len(visitors)]
            latest = m.visitor_latest[visitor]
            v = ad_visit(e, now, visitor=visitor)
            if m.last[latest] + IDLE > now:
                assert (v.session, v.number) == (latest, m.number[latest])
                m.last[latest] = max(m.last[latest], now)
            else:
                assert v.number == m.number[latest], "returning visitor lost their number"
                m.sharings += v.number in m.held(now)
                _started(m, sessions, visitors, v, now)
        elif op in (*EXTEND, "hidden") and sessions:
            s = sessions[arg % len(sessions)]
            if op != "hidden":
                if m.last[s] + IDLE <= now and m.number[s] in m.held(now):
                    m.sharings += 1  # a revival onto a number someone else holds
                m.last[s] = max(m.last[s], now)
            e.activity(session=s, kind=op, at=now)
        _check(e, m, len(numbers), now)


def _started(m: Model, sessions: list[str], visitors: list[str], v: object, now: float) -> None:
    session, visitor, number = v.session, v.visitor, v.number  # type: ignore[attr-defined]
    assert session not in m.number
    m.number[session], m.last[session] = number, now
    if visitor not in m.visitor_latest:
        visitors.append(visitor)
    m.visitor_latest[visitor] = session
    sessions.append(session)


def _check(e: object, m: Model, size: int, now: float) -> None:
    p = e.pool_stats(at=now)[0]  # type: ignore[attr-defined]
    assert p.reserved + p.cooling + p.free == p.numbers == size
    assert p.reserved == len(m.held(now))
    assert p.live == len(m.live(now))
    assert p.sessions == len(m.number)
    assert p.sharings == m.sharings
