"""`Engine`: the functional core's one entry point (see the package docstring for the contract).

It owns the in-memory state (`state.py`), chooses numbers (`ring.py`), classifies landings
(`classify.py`), attributes calls (`calls.py`) and restores state (`restore.py`); it appends a
record for everything worth persisting and hands them out with `drain()`. Time only moves
through the `at` arguments; the latest one seen is the engine's "now" for housekeeping.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.engine import calls, inputs
from gateway.engine.agents import agent
from gateway.engine.classify import classify, parse_landing
from gateway.engine.config import Config, SiteConfig, parse_config
from gateway.engine.errors import (
    EngineError,
    InvalidInput,
    UnknownCall,
    UnknownNumber,
    UnknownSession,
    UnknownSite,
)
from gateway.engine.ids import IdFactory, secure_ids, seeded_ids
from gateway.engine.phones import parse_e164
from gateway.engine.records import (
    SHARED_KIND,
    CallState,
    MatchOverride,
    Record,
    SessionEvent,
    SessionStarted,
    SessionState,
)
from gateway.engine.restore import collector_paused, from_states, install, rehome
from gateway.engine.results import Call, NumberInfo, PoolStats, Visit
from gateway.engine.ring import extend, hold, pool_stats
from gateway.engine.state import (
    NEVER,
    NumberSlot,
    Session,
    SiteRuntime,
    SourceRuntime,
    build,
    carry_counters,
    supersede,
)
from scoring.features import CallContext

PRUNE_STEP = 4  # expired sessions forgotten per visit: more than the one a visit adds


def _short(source: SourceRuntime, at: float) -> bool:
    """No free number of the source among those owned here, while others own some."""
    ring = source.ring
    if ring is None or ring.owned is None or len(ring.owned) >= len(source.pool):
        return False
    top = ring.least_recent()
    return top is None or top.reserved_until > at


class Engine:
    """Sources, rotation rings, sessions and calls of every configured site, in memory."""

    def __init__(self, config: Config, ids: IdFactory) -> None:
        self._config = config
        self._ids = ids
        self._sites, self._numbers = build(config)
        self._sessions: dict[str, Session] = {}
        self._aging: deque[Session] = deque()  # sessions in start order, for forgetting
        self._calls = calls.CallBook()
        self._records: list[Record] = []
        self._now = NEVER
        self._owned: frozenset[str] | None = None  # numbers it may hand out; None: all

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Config, *, seed: int | None = None,
                    ids: IdFactory | None = None) -> Engine:
        """An engine for a config dict (validated; raises ConfigError) or a parsed Config.

        Ids are unguessable (`secrets`) unless `seed` or `ids` is given for reproducible runs.
        """
        parsed = config if isinstance(config, Config) else parse_config(config)
        if ids is None:
            ids = secure_ids() if seed is None else seeded_ids(seed)
        return cls(parsed, ids)

    # -- swap path --------------------------------------------------------------------------

    def visit(self, *, site: str, url: str, referrer: str | None = None,
              user_agent: str | None = None, visitor: str | None = None,
              at: float) -> Visit:
        """A page view: continue the visitor's live session, or start one, or show the site's
        own number (bots, inactive sites, landings no source matches, a full pool under the
        "site_number" policy: no session, no records). See the package docstring."""
        at = inputs.at(at)
        runtime = self._site(site)
        url = inputs.text(url, "url", inputs.MAX_URL_LENGTH)
        referrer = inputs.optional_text(referrer, "referrer", inputs.MAX_URL_LENGTH)
        ua = inputs.user_agent(user_agent)
        visitor = inputs.visitor(visitor)
        self._tick(at)
        bot, mobile = agent(ua)
        if bot or not runtime.active:
            return self._own(runtime, visitor)
        latest = runtime.visitors.get(visitor) if visitor is not None else None
        if latest is not None and latest.live(at):
            return self._continue(latest, at)
        landing = parse_landing(url, referrer, runtime.hosts)
        source = classify(runtime.matchers, landing)
        if source is None:
            return self._own(runtime, visitor)
        slot = self._choose(source, self._sticky(latest, source, at), at)
        if slot is None:
            return self._own(runtime, visitor)
        session, unmarked = self._start(slot, visitor, latest, mobile, at)
        self._records.append(SessionStarted(
            session.id, session.visitor, runtime.key, source.name, slot.number, at, url,
            referrer, ua, mobile, session.shared, visitor is not None, landing.attribution()))
        self._mark_shared(unmarked, at)
        return Visit(session.visitor, session.id, source.name, slot.number, slot.formatted)

    def activity(self, *, session: str, kind: str, at: float) -> None:
        """Activity on a session: "pageview", "ping", "click_to_call" extend its reservation;
        "hidden" does not. Activity on a session past its idle timeout revives it (the page is
        still showing the number), which is a sharing if someone else holds the number now."""
        at = inputs.at(at)
        kind = inputs.kind(kind)
        s = self._session(session)
        self._tick(at)
        self._touch(s, kind, at)
        self._records.append(SessionEvent(s.id, kind, at))

    def site_number(self, site: str, visitor: str | None = None) -> Visit:
        """The site's own number and no session (for a client over its rate limit)."""
        return self._own(self._site(site), inputs.visitor(visitor))

    # -- call path --------------------------------------------------------------------------

    def call(self, *, to: str, caller: str | None, call_id: str, at: float) -> Call:
        """Attribute a call to the dialled tracking number's most likely session.

        Idempotent per call_id (a retry gets the same answer and records nothing). Raises
        UnknownNumber for a number that is not tracked or is inactive."""
        call_id = inputs.text(call_id, "call_id", inputs.MAX_CALL_ID_LENGTH)
        known = self._calls.get(call_id)
        if known is not None:
            return known.result()
        at = inputs.at(at)
        slot = self._slot(to)
        source = slot.source
        if not (source.site.active and source.config.active):
            raise UnknownNumber(slot.number, "inactive")
        entry = calls.CallEntry(call_id, site=source.site.key, source=source.name,
                                to=slot.number, caller=inputs.caller(caller),
                                forward_to=source.config.forward_to, at=at)
        self._tick(at)
        history = self._calls.history(entry.site, entry.caller)
        if source.config.kind == "online":
            ctx = CallContext(at, entry.caller, source.idle, bool(history))
            entry.attach(*calls.rank(slot, ctx, history))
        self._calls.keep(entry, self._now, self._call_retention)
        self._records.append(entry.record())
        return entry.result()

    def override(self, *, call_id: str, session: str, by: str = "user",
                 at: float | None = None) -> Call:
        """Attach a call to another session: one of its candidates, or any session of its site
        still in memory. `at` defaults to the latest time the engine has seen."""
        entry = self._calls.get(inputs.text(call_id, "call_id", inputs.MAX_CALL_ID_LENGTH))
        if entry is None:
            raise UnknownCall(call_id)
        by = inputs.text(by, "by", inputs.MAX_BY_LENGTH)
        when = self._now if at is None else inputs.at(at)
        self._now = max(self._now, when)
        visitor, likelihood = self._choice(entry, inputs.ident(session, "session"))
        if entry.match != session:
            self._records.append(MatchOverride(call_id, session, visitor, entry.match, by, when))
            entry.match, entry.visitor, entry.likelihood = session, visitor, likelihood
        return entry.result()

    def lookup(self, number: str) -> NumberInfo:
        """Routing facts of a tracking number (inactive ones too, flagged); else UnknownNumber."""
        slot = self._slot(number)
        source = slot.source
        cfg = source.config
        return NumberInfo(slot.number, source.site.key, source.name, cfg.kind, cfg.forward_to,
                          cfg.record, cfg.whisper, cfg.ring_timeout,
                          source.site.active and cfg.active)

    # -- records, restore, configuration ---------------------------------------------------

    def drain(self) -> list[Record]:
        """The records appended since the last drain, in order (and forget them)."""
        out, self._records = self._records, []
        return out

    def restore_sessions(self, states: Iterable[SessionState]) -> int:
        """Load persisted sessions (on a fresh engine, before traffic; no records are made).
        States of sites, sources or numbers no longer configured are skipped. Returns how many
        were restored."""
        with collector_paused():
            restored, ordered, latest = from_states(states, self._numbers)
            self._now = max(self._now, latest)
            return install(restored, self._sessions, self._aging, self._sites, self._now,
                           ordered=ordered)

    def restore_calls(self, states: Iterable[CallState]) -> int:
        """Load persisted calls (idempotent retries, overrides, caller history). Returns how
        many were restored. Their candidate lists are not restored."""
        count = 0
        for st in states:
            if self._calls.get(st.call_id) is not None:
                continue
            entry = calls.CallEntry(st.call_id, site=st.site, source=st.source, to=st.to,
                                    caller=st.caller, forward_to=self._forward_to(st), at=st.at)
            entry.match, entry.visitor, entry.likelihood = st.match, st.visitor, st.likelihood
            self._calls.keep(entry, self._now, self._call_retention)
            count += 1
        return count

    def reconfigure(self, config: Mapping[str, Any] | Config) -> None:
        """Swap in a new configuration (raises ConfigError and changes nothing if invalid).
        Sessions stay when their site key, source name and number still exist together;
        calls and pending records always stay."""
        parsed = config if isinstance(config, Config) else parse_config(config)
        sites, numbers = build(parsed)
        carry_counters(self._sites, sites)
        moved = rehome(self._sessions.values(), sites, numbers)
        self._config, self._sites, self._numbers = parsed, sites, numbers
        self._sessions, self._aging = {}, deque()
        install(moved, self._sessions, self._aging, self._sites, self._now)
        self._restrict_rings()

    # -- scale-out: several processes on one database -----------------------------------------

    def own_numbers(self, numbers: Iterable[str] | None) -> None:
        """Hand out to new sessions only these pool numbers (E.164): the ones whose lease this
        process holds when several share a database. None (the default) means every number.

        Everything else goes on for every number: a returning visitor is shown their number
        again and activity keeps it reserved, and calls to any number are attributed. A source
        with no owned number follows its overflow policy for new sessions, except that "share"
        falls back to the site's own number: sharing a number another process owns could show
        a free number to two new visitors at once. A reconfiguration keeps the restriction."""
        self._owned = None if numbers is None else frozenset(numbers)
        self._restrict_rings()

    def owned_numbers(self) -> frozenset[str] | None:
        """The numbers given to `own_numbers` that are configured pool numbers (None: all)."""
        if self._owned is None:
            return None
        return frozenset(n for n in self._owned
                         if (slot := self._numbers.get(n)) is not None and slot.index >= 0)

    def pool_numbers(self) -> list[tuple[str, str, list[str]]]:
        """(site, source, numbers in config order) of every active online source: what the
        processes sharing a database split between them."""
        return [(site.key, source.name, [slot.number for slot in source.pool])
                for site in self._sites.values() if site.active
                for source in site.sources.values()
                if source.ring is not None and source.config.active]

    def short_source(self, *, site: str, url: str, referrer: str | None = None,
                     user_agent: str | None = None, visitor: str | None = None,
                     at: float) -> str | None:
        """Scale-out: the online source whose pool `visit()` with these arguments would need a
        number of while this process has no free number of it and other processes own some
        (the shell then asks them to lend one, `lend()`); None otherwise, always None while it
        owns every number. Changes nothing and records nothing; invalid input is None (the
        visit itself reports it)."""
        if self._owned is None or not isinstance(site, str):
            return None
        runtime = self._sites.get(site)
        if runtime is None or not runtime.active:
            return None
        if not any(_short(source, at) for source, _ in runtime.matchers):
            return None  # the common case: a free number of every source at hand
        try:
            source = self._new_session_source(runtime, url, referrer, user_agent,
                                              visitor=visitor, at=at)
        except EngineError:
            return None
        return source.name if source is not None and _short(source, at) else None

    def _new_session_source(self, runtime: SiteRuntime, url: str, referrer: str | None,
                            user_agent: str | None, *, visitor: str | None,
                            at: float) -> SourceRuntime | None:
        """The source `visit()` would take a new number of (not for bots, live sessions or
        sticky visitors); raises EngineError on invalid input."""
        url = inputs.text(url, "url", inputs.MAX_URL_LENGTH)
        referrer = inputs.optional_text(referrer, "referrer", inputs.MAX_URL_LENGTH)
        ua = inputs.user_agent(user_agent)
        visitor = inputs.visitor(visitor)
        at = inputs.at(at)
        latest = runtime.visitors.get(visitor) if visitor is not None else None
        if agent(ua)[0] or (latest is not None and latest.live(at)):
            return None
        source = classify(runtime.matchers, parse_landing(url, referrer, runtime.hosts))
        if source is None or self._sticky(latest, source, at) is not None:
            return None
        return source

    def lend(self, *, site: str, source: str, at: float, free: bool = True) -> str | None:
        """Scale-out: give up one number of the source for another process to hand out; it is
        no longer owned here. `free=True`: the one free the longest, None when none is free.
        `free=False` (the other process owns none of the pool, which is full): the one idle
        the longest, so that it can share it, but only while this process keeps another."""
        runtime = self._sites.get(site) if isinstance(site, str) else None
        src = runtime.sources.get(source) if runtime is not None else None
        if src is None or src.ring is None or self._owned is None or src.ring.owned is None:
            return None
        slot = src.ring.least_recent()
        if slot is None:
            return None
        if slot.reserved_until > at and (free or len(src.ring.owned) < 2):
            return None
        self.own_numbers(self._owned - {slot.number})
        return slot.number

    def owns_any(self, *, site: str, source: str) -> bool:
        """Scale-out: whether this process may hand out at least one number of the source."""
        runtime = self._sites.get(site)
        src = runtime.sources.get(source) if runtime is not None else None
        ring = src.ring if src is not None else None
        return ring is not None and (ring.owned is None or bool(ring.owned))

    def reserved(self, numbers: Iterable[str], at: float) -> frozenset[str]:
        """The numbers among these held by a live session at `at`."""
        return frozenset(n for n in numbers
                         if (slot := self._numbers.get(n)) is not None
                         and slot.reserved_until > at)

    def absorb(self, sessions: Iterable[SessionState] = (),
               events: Iterable[tuple[str, str, float]] = (),
               calls: Iterable[CallState] = ()) -> tuple[int, int, int]:
        """What other processes sharing the database recorded, applied as if it had happened
        here but without making records (they are stored already): sessions started, session
        events `(session, kind, at)` in time order, and calls. Sessions and calls already known
        are skipped; events of unknown sessions too. Sessions count for stickiness,
        reservations and call candidates like local ones. Returns how many of each applied."""
        mark = len(self._records)
        with collector_paused():
            fresh, _, latest = from_states(
                (st for st in sessions if st.session not in self._sessions), self._numbers)
            self._now = max(self._now, latest)
            started = install(fresh, self._sessions, self._aging, self._sites, self._now,
                              settle=False)
        applied = 0
        for session, kind, at in events:
            s = self._sessions.get(session)
            if s is None:
                continue
            applied += 1
            self._now = max(self._now, at)
            if kind == SHARED_KIND:
                if not s.shared:
                    s.shared = True
                    s.slot.shown.changed(s)
                continue
            self._touch(s, kind, at)
        del self._records[mark:]  # sharings noticed here were recorded where they happened
        return started, applied, self.restore_calls(calls)

    # -- reads ------------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._config

    def site(self, key: str) -> SiteConfig:
        """The site's configuration; raises UnknownSite."""
        return self._site(key).config

    def sessions_count(self) -> int:
        """Sessions held in memory (live or within their retention window)."""
        return len(self._sessions)

    def calls_count(self) -> int:
        return len(self._calls)

    def pool_stats(self, at: float | None = None) -> list[PoolStats]:
        """Per online source, the pool's state at `at` (default: the latest time seen)."""
        when = self._now if at is None else inputs.at(at)
        return [pool_stats(source, when) for site in self._sites.values()
                for source in site.sources.values() if source.ring is not None]

    # -- internals --------------------------------------------------------------------------

    def _site(self, key: object) -> SiteRuntime:
        if not isinstance(key, str):
            raise InvalidInput("site", "expected a site key")
        runtime = self._sites.get(key)
        if runtime is None:
            raise UnknownSite(key)
        return runtime

    def _session(self, session: object) -> Session:
        s = self._sessions.get(inputs.ident(session, "session"))
        if s is None:
            raise UnknownSession(str(session))
        return s

    def _slot(self, number: object) -> NumberSlot:
        """The slot of a tracking number in any format; UnknownNumber for any other text."""
        if not isinstance(number, str):
            raise InvalidInput("to", f"expected a phone number string, got {type(number).__name__}")
        slot = self._numbers.get(number)
        if slot is None:
            e164 = parse_e164(number)
            slot = self._numbers.get(e164) if e164 is not None else None
        if slot is None:
            raise UnknownNumber(number[:64])
        return slot

    def _own(self, site: SiteRuntime, visitor: str | None) -> Visit:
        return Visit(visitor or self._ids("v_"), None, None, site.own, site.own_formatted)

    def _continue(self, s: Session, at: float) -> Visit:
        self._touch(s, "pageview", at)
        self._records.append(SessionEvent(s.id, "pageview", at))
        return Visit(s.visitor, s.id, s.source.name, s.slot.number, s.slot.formatted)

    def _sticky(self, latest: Session | None, source: SourceRuntime,
                at: float) -> NumberSlot | None:
        """The number a returning visitor last had from this source, within stickiness."""
        if latest is None:
            return None
        for s in (latest, *latest.others):
            if s.source is source:
                fresh = at - s.last_activity <= source.site.stickiness
                return s.slot if fresh and s.slot.index >= 0 else None
        return None

    def _choose(self, source: SourceRuntime, sticky: NumberSlot | None,
                at: float) -> NumberSlot | None:
        """Sticky number, else the ring's least recently released; overflow when all are
        reserved: share the one idle longest, the overflow number, or None (site number)."""
        if sticky is not None:
            return sticky
        assert source.ring is not None  # classify() only returns online sources
        slot = source.ring.least_recent()
        policy = source.config.overflow
        if slot is not None and (slot.reserved_until <= at or policy == "share"):
            return slot
        source.overflowed += 1
        return source.overflow if policy == "overflow_number" else None

    def _start(self, slot: NumberSlot, visitor: str | None, latest: Session | None,
               mobile: bool, at: float) -> tuple[Session, list[Session]]:
        """A new session on `slot`, and the holders it shares with that are not marked yet."""
        s = Session(self._ids("s_"), visitor or self._ids("v_"), slot, at, mobile)
        shared, unmarked = hold(slot, s, at)
        if shared:
            s.shared = True
            slot.source.sharings += 1
        s.holders = len(slot.holders)
        site = slot.source.site
        if latest is not None:
            s.ordinal = latest.ordinal + 1
            s.others = tuple(x for x in (latest, *latest.others) if x.source is not s.source)
        previous = site.visitors.get(s.visitor)
        if previous is not None:
            supersede(previous)
        site.visitors[s.visitor] = s
        self._sessions[s.id] = s
        self._aging.append(s)
        calls.remember(slot, s, at)
        slot.source.tracked += 1
        return s, unmarked

    def _touch(self, s: Session, kind: str, at: float) -> None:
        if kind == "hidden":
            s.hidden_at = at if s.hidden_at is None else max(s.hidden_at, at)
            s.slot.shown.changed(s)
            return
        if not s.live(at):  # revival: it lost the number at its idle timeout; take it back
            shared, unmarked = hold(s.slot, s, at)
            s.last_activity = at
            extend(s.slot, s)
            if shared:
                s.source.sharings += 1
                self._mark_shared([*unmarked, s], at)
        elif at > s.last_activity:
            s.last_activity = at
            extend(s.slot, s)
        if kind == "pageview":
            s.pageviews += 1
        elif kind == "click_to_call":
            s.last_click_to_call = at if s.last_click_to_call is None else max(
                s.last_click_to_call, at)
        s.holders = len(s.slot.holders)
        s.slot.shown.changed(s)

    def _mark_shared(self, sessions: list[Session], at: float) -> None:
        """Mark sessions shared, with a "shared" record for each that was not yet."""
        for s in sessions:
            if not s.shared:
                s.shared = True
                s.slot.shown.changed(s)
                self._records.append(SessionEvent(s.id, SHARED_KIND, at))

    def _tick(self, at: float) -> None:
        """Advance "now" and forget a few sessions past their retention."""
        self._now = max(self._now, at)
        aging = self._aging
        for _ in range(PRUNE_STEP):
            if not aging:
                return
            s = aging[0]
            retention = s.source.retention
            if s.started_at + retention >= at:
                return
            aging.popleft()
            if s.last_activity + retention >= at:
                aging.append(s)  # old but still active: look again later
            else:
                self._forget(s)

    def _forget(self, s: Session) -> None:
        if self._sessions.get(s.id) is s:
            del self._sessions[s.id]
            s.source.tracked -= 1
        visitors = s.source.site.visitors
        if visitors.get(s.visitor) is s:
            del visitors[s.visitor]
        supersede(s)  # no longer its visitor's entry, should a call still see it

    def _call_retention(self, entry: calls.CallEntry) -> float:
        site = self._sites.get(entry.site)
        source = site.sources.get(entry.source) if site is not None else None
        return source.retention if source is not None else calls.DEFAULT_CALL_RETENTION_S

    def _choice(self, entry: calls.CallEntry, session: str) -> tuple[str, float | None]:
        """(visitor, likelihood) of an override target; raises UnknownSession."""
        for listed_session, visitor, likelihood in entry.candidates:
            if listed_session == session:
                return visitor, likelihood
        s = self._sessions.get(session)
        if s is None or s.source.site.key != entry.site:
            raise UnknownSession(session)
        return s.visitor, None

    def _restrict_rings(self) -> None:
        owned = self._owned
        for site in self._sites.values():
            for source in site.sources.values():
                if source.ring is not None:
                    source.ring.restrict(None if owned is None else frozenset(
                        slot.index for slot in source.pool if slot.number in owned))

    def _forward_to(self, st: CallState) -> str:
        site = self._sites.get(st.site)
        source = site.sources.get(st.source) if site is not None else None
        if source is not None:
            return source.config.forward_to
        slot = self._numbers.get(st.to)
        return slot.source.config.forward_to if slot is not None else ""
