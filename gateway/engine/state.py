"""The engine's mutable in-memory state: sessions, numbers, sources and sites at runtime.

These are plain `__slots__` classes, not dataclasses: they change on every page view and ping,
there are up to millions of sessions (budget: <= 1 KiB each, all included), and nothing outside
the engine ever sees them. Strings repeated across sessions (site keys, source names, numbers)
live once, on the runtime objects the sessions point to.
"""

from __future__ import annotations

from gateway.engine.classify import Matcher, compile_match, own_host
from gateway.engine.config import Config, SiteConfig, SourceConfig
from gateway.engine.phones import national
from gateway.engine.ring import Ring
from gateway.engine.shown import Shown
from scoring.model import profile

DAY_S = 86400.0  # stickiness is configured in days
NEVER = float("-inf")  # reserved_until of a number no session has held: free the longest


class Session:
    """One visit of one visitor on one site, holding one number."""

    __slots__ = (
        "hidden_at", "holders", "id", "last_activity", "last_click_to_call", "mobile", "noted",
        "ordinal", "others", "pageviews", "pos", "shared", "slot", "source", "started_at",
        "superseded", "visitor",
    )

    def __init__(self, sid: str, visitor: str, slot: NumberSlot, at: float,
                 mobile: bool) -> None:
        self.id = sid
        self.visitor = visitor
        self.source: SourceRuntime = slot.source
        self.slot = slot
        self.started_at = at
        self.last_activity = at  # latest pageview / ping / click_to_call
        self.mobile = mobile
        self.shared = False
        self.pageviews = 1
        self.last_click_to_call: float | None = None
        self.hidden_at: float | None = None
        # Sessions on the number at this session's last activity: the live ones, plus, on a
        # number shared by many, expired ones not pruned yet (at most as many again).
        self.holders = 1
        self.ordinal = 1  # this visitor's sessions on the site so far, this one included
        self.others: tuple[Session, ...] = ()  # the visitor's latest session of other sources
        # The visitor has a later session, or this one was forgotten: it may no longer be
        # `site.visitors[visitor]`, which otherwise it is (calls.py relies on that).
        self.superseded = False
        self.pos = -1  # position in `slot.shown` (see shown.py), -1 while not queued there
        self.noted = 0  # the `slot.shown` epoch in which its change was noted (see shown.py)

    def live(self, at: float) -> bool:
        """Within the idle timeout of its last activity: it holds its number."""
        return self.last_activity + self.source.idle > at


class NumberSlot:
    """A tracking number at runtime: who holds it, and who has been shown it."""

    __slots__ = ("formatted", "holders", "index", "marked", "number", "pruned", "reserved_until",
                 "shown", "source")

    def __init__(self, number: str, source: SourceRuntime, index: int) -> None:
        self.number = number
        self.formatted = national(number)
        self.source = source
        self.index = index  # position in the source's ring; -1 for offline and overflow numbers
        self.reserved_until = NEVER  # max(last_activity + idle) of the sessions it was given to
        self.holders: list[Session] = []  # sessions that may still be live on it (pruned lazily)
        self.pruned = 0  # len(holders) after the last pruning
        self.marked = False  # every live holder is marked shared (set once a sharing happened)
        self.shown = Shown()  # sessions shown it, oldest first (match window), by column


class SourceRuntime:
    """A configured source with its numbers, ring and counters."""

    __slots__ = ("config", "idle", "model", "name", "numbers", "overflow", "overflowed", "pool",
                 "retention", "ring", "rules", "sharings", "site", "tracked", "window")

    def __init__(self, config: SourceConfig, site: SiteRuntime) -> None:
        self.config = config
        self.site = site
        self.name = config.name
        self.idle = config.idle_timeout
        self.window = config.match_window
        self.retention = max(config.match_window, site.stickiness)  # how long sessions are kept
        self.rules: Matcher = compile_match(config.match)
        self.model = profile(config.scoring)  # None: the packaged mixed model
        online = config.kind == "online"
        self.numbers = tuple(NumberSlot(n, self, i if online else -1)
                             for i, n in enumerate(config.numbers))
        self.pool = self.numbers if online else ()  # the ring's numbers, in config order
        self.overflow = NumberSlot(config.overflow_number, self, -1
                                   ) if config.overflow_number else None
        self.ring = Ring(self.pool) if online else None
        self.sharings = 0
        self.overflowed = 0
        self.tracked = 0  # sessions of this source held in memory

    def slots(self) -> tuple[NumberSlot, ...]:
        """Every number of the source: pool (or static numbers), then the overflow number."""
        return self.numbers + ((self.overflow,) if self.overflow else ())


class SiteRuntime:
    """A configured site: its sources in precedence order and its visitors."""

    __slots__ = ("active", "config", "hosts", "key", "matchers", "own", "own_formatted",
                 "sources", "stickiness", "visitors")

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.key = config.key
        self.active = config.active
        self.own = config.own_number
        self.own_formatted = national(self.own)
        self.hosts = tuple(own_host(origin.split("://", 1)[1].split(":", 1)[0])
                           for origin in config.allowed_origins)
        self.stickiness = config.stickiness_days * DAY_S
        self.sources = {s.name: SourceRuntime(s, self) for s in config.sources}
        # Online, active sources in config order: the classification precedence.
        self.matchers = tuple((rt, rt.rules) for rt in self.sources.values()
                              if rt.config.active and rt.config.kind == "online")
        self.visitors: dict[str, Session] = {}  # visitor id -> their latest session


def supersede(s: Session) -> None:
    """Mark `s` as no longer its visitor's latest session (a later one started, or it is
    forgotten): calls then look the visitor up instead of trusting the session's own ordinal."""
    if not s.superseded:
        s.superseded = True
        s.slot.shown.changed(s)


def build(config: Config) -> tuple[dict[str, SiteRuntime], dict[str, NumberSlot]]:
    """Runtime objects for a parsed config: sites by key and every tracking number's slot."""
    sites = {site.key: SiteRuntime(site) for site in config.sites}
    numbers: dict[str, NumberSlot] = {}
    for site in sites.values():
        for source in site.sources.values():
            for slot in source.slots():
                numbers[slot.number] = slot
    return sites, numbers


def carry_counters(old: dict[str, SiteRuntime], new: dict[str, SiteRuntime]) -> None:
    """Keep each source's sharing and overflow counters across a reconfiguration."""
    for key, site in new.items():
        previous = old.get(key)
        if previous is None:
            continue
        for name, source in site.sources.items():
            before = previous.sources.get(name)
            if before is not None:
                source.sharings, source.overflowed = before.sharings, before.overflowed
