"""Putting sessions into the runtime: from persisted states at start, or from the old runtime
when the configuration changes.

Rotation state is not persisted: it follows from the sessions. A number's `reserved_until` is
the latest `last_activity + idle_timeout` of the sessions shown it, so after a restart a live
reservation still holds and a free number keeps its release time (its place in the LRU order).
Sessions are linked in start order, so each visitor's latest session (stickiness) and session
count come out as they were.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from gateway.engine.records import SessionState
from gateway.engine.state import NEVER, NumberSlot, Session, SiteRuntime, supersede


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk load. A million new long-lived objects
    otherwise trigger repeated full collections (a third of the restore time), and nothing a
    restore allocates becomes garbage. The collector's previous state is put back."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def from_states(states: Iterable[SessionState],
                numbers: dict[str, NumberSlot]) -> tuple[list[Session], bool, float]:
    """Sessions for the states whose site, source and number still exist together (others are
    skipped); whether they came in start order; and the latest activity among them."""
    out = []
    ordered, previous, latest = True, NEVER, NEVER
    for st in states:
        slot = numbers.get(st.number)
        if slot is None:
            continue
        source = slot.source
        if source.name != st.source or source.site.key != st.site or source.ring is None:
            continue
        s = Session(st.session, st.visitor, slot, st.started_at, st.mobile)
        last = st.last_activity if st.last_activity > st.started_at else st.started_at
        s.last_activity = last
        s.shared = st.shared
        s.pageviews = st.pageviews
        s.last_click_to_call = st.last_click_to_call
        s.hidden_at = st.hidden_at
        out.append(s)
        if st.started_at <= previous:  # equal starts: ids decide, so sort to be sure
            ordered = False
        previous = st.started_at
        latest = max(latest, last)
    return out, ordered, latest


def rehome(old: Iterable[Session], sites: dict[str, SiteRuntime],
           numbers: dict[str, NumberSlot]) -> list[Session]:
    """Move sessions onto a new runtime: same site key, same source name, number still in it."""
    out = []
    for s in old:
        slot = numbers.get(s.slot.number)
        if slot is None or slot.source.name != s.source.name:
            continue
        if slot.source.site is not sites.get(s.source.site.key):
            continue
        s.slot, s.source, s.others, s.pos = slot, slot.source, (), -1
        out.append(s)
    return out


def install(sessions: list[Session], index: dict[str, Session], aging: deque[Session],
            sites: dict[str, SiteRuntime], now: float, *, ordered: bool = False,
            settle: bool = True) -> int:
    """Index sessions (in start order), link visitors, and re-derive every number's
    reservation. A session id already indexed is skipped. Returns how many were installed.

    `settle=False` adds to a runtime in use (sessions another process started): reservations
    only grow then, which the rings take lazily, so nothing is re-keyed. A session older than
    its visitor's latest one known here does not replace it."""
    if not ordered:
        sessions.sort(key=_start_order)
    count = 0
    for s in sessions:
        if index.setdefault(s.id, s) is not s:
            continue
        count += 1
        source, slot = s.source, s.slot
        visitors = source.site.visitors
        latest = visitors.get(s.visitor)
        if latest is not None and _start_order(latest) > _start_order(s):
            s.visitor, s.superseded = latest.visitor, True  # learnt late: not the latest
        else:
            if latest is not None:
                _follow(latest, s)
            visitors[s.visitor] = s
        aging.append(s)
        slot.shown.append(s)
        source.tracked += 1
        until = s.last_activity + source.idle
        slot.reserved_until = max(slot.reserved_until, until)
        if until > now:
            slot.holders.append(s)
    if settle:
        _settle(sites, now)
    return count


def _start_order(s: Session) -> tuple[float, str]:
    return s.started_at, s.id


def _follow(latest: Session, s: Session) -> None:
    """`s` is the visitor's next session after `latest`."""
    s.visitor = latest.visitor  # one string per visitor, however many sessions
    s.ordinal = max(s.ordinal, latest.ordinal + 1)
    supersede(latest)
    if latest.source is not s.source or latest.others:
        s.others = tuple(x for x in (latest, *latest.others) if x.source is not s.source)


def _settle(sites: dict[str, SiteRuntime], now: float) -> None:
    """Drop shown sessions already outside the match window; re-key every ring."""
    for site in sites.values():
        for source in site.sources.values():
            since = now - source.window
            for slot in source.slots():
                shown = slot.shown
                while shown and shown.first().last_activity < since:
                    shown.popleft()
            if source.ring is not None:
                source.ring.rebuild()
