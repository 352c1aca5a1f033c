"""The sessions shown one tracking number, oldest first, with what a call scores in columns.

`engine.call()` scores every session shown the dialled number within the match window, up to
thousands per call. Read from one `Session` object each (and a `Timeline` per session, and the
visitor's latest session), those are cache misses on a busy server, not arithmetic: 1,000
candidates measured 2.2 ms with cold caches against 0.85 ms warm. So each number keeps, beside
its queue of sessions, their scored fields in parallel arrays (doubles, bytes) that a call
slices (`candidates.gather`) into `scoring.features.TimelineColumns`.

The arrays are a cache brought up to date when a call needs them (`refresh`), so the swap path
pays next to nothing: a new session is only appended to the queue, and a changed one is noted
once (`changed`) until the next call rewrites its entry. The queue appends at the back and
drops at the front; the front is an offset into the storage, compacted once it holds half of it
(amortised O(1)). A session knows its absolute position (`Session.pos`, -1 while not queued).
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING

from scoring.features import NONE_TIME

if TYPE_CHECKING:
    from gateway.engine.state import Session

COMPACT_AFTER = 1024  # dropped entries before compacting: copies stay rare and short
_epochs = itertools.count(1)  # globally unique, so a moved session's old mark never matches


def hidden_at(s: Session) -> float:
    """The session's `Timeline.hidden_at`: its latest "hidden" unless activity came after (the
    page was visible again), NaN for None."""
    hidden = s.hidden_at
    return NONE_TIME if hidden is None or hidden < s.last_activity else hidden


def evidence(s: Session) -> bool:
    """Whether the model has more than recency, caller and pageviews to weigh for `s`: a
    click_to_call, a hidden time, sharing, or a returning visitor (`ordinal > 1`; a superseded
    session's visitor count is only known at call time, and `candidates` flags it then)."""
    return (s.last_click_to_call is not None or s.hidden_at is not None or s.shared
            or s.ordinal > 1)


class Shown:
    """Sessions shown a number, oldest first (a queue), and their scored fields by column.

    Entry i of every column belongs to `sessions[i]`, for i < `built`; entries before `head`
    were dropped. `superseded` marks sessions whose visitor has started a later session (or
    that were forgotten): for those the visitor's latest session is looked up at call time.
    """

    __slots__ = ("base", "built", "c2c", "changes", "epoch", "evidence", "head", "hidden",
                 "high_started", "ids", "last", "low_last", "mobile", "ordinal",
                 "pageviews", "sessions", "shared", "started", "superseded", "visitors")

    def __init__(self) -> None:
        self.sessions: list[Session | None] = []
        self.base = 0  # absolute position of entry 0
        self.head = 0  # the oldest entry still queued
        self.built = 0  # entries the columns cover
        self.changes: list[Session] = []  # covered entries changed since the last refresh
        self.epoch = next(_epochs)  # `Session.noted` equals it while noted in `changes`
        self.ids: list[str] = []  # the sessions' ids and visitors, for listing the best
        self.visitors: list[str] = []  # candidates without touching each Session object
        self.last = array("d")  # last_activity
        self.started = array("d")  # started_at
        self.c2c = array("d")  # last_click_to_call, NaN for None
        self.hidden = array("d")  # `hidden_at(s)`
        self.pageviews = array("q")
        self.ordinal = array("q")  # the session's own ordinal among its visitor's sessions
        self.mobile = bytearray()
        self.shared = bytearray()
        self.superseded = bytearray()
        self.evidence = bytearray()  # `evidence(s)`
        # Bounds on the columns' queued entries, so a call can often skip looking at each one:
        # at most the least last_activity, at least the greatest started_at (both `tighten`ed).
        self.low_last = float("inf")
        self.high_started = float("-inf")

    def __len__(self) -> int:
        return len(self.sessions) - self.head

    def __iter__(self) -> Iterator[Session]:
        """The queued sessions, oldest first."""
        for s in self.sessions[self.head:]:
            assert s is not None
            yield s

    def first(self) -> Session:
        """The oldest queued session (the queue must not be empty)."""
        s = self.sessions[self.head]
        assert s is not None
        return s

    def append(self, s: Session) -> None:
        """Queue `s` at the back (it must not be queued already)."""
        s.pos = self.base + len(self.sessions)
        self.sessions.append(s)

    def popleft(self) -> Session:
        """Drop the oldest queued session and return it."""
        s = self.first()
        self.sessions[self.head] = None
        self.head += 1
        s.pos = -1
        if self.head >= COMPACT_AFTER and 2 * self.head >= len(self.sessions):
            self._compact()
        return s

    def changed(self, s: Session) -> None:
        """`s` changed: its entry is rewritten at the next `refresh` (O(1) until then)."""
        i = s.pos - self.base
        if s.noted == self.epoch or s.pos < 0 or i >= self.built:
            return  # noted already, or not queued, or not covered yet: nothing to rewrite
        s.noted = self.epoch  # so `changes` holds each covered session at most once
        self.changes.append(s)

    def index(self, s: Session) -> int:
        """The array index of `s`, or -1 when it is not queued here."""
        i = s.pos - self.base
        if s.pos < 0 or i < self.head or i >= len(self.sessions) or self.sessions[i] is not s:
            return -1
        return i

    def refresh(self) -> None:
        """Bring the columns up to date: rewrite changed entries, add the new ones."""
        for s in self.changes:
            i = s.pos - self.base
            if s.pos >= 0 and i < self.built and self.sessions[i] is s:
                self._write(i, s)
        self.changes = []
        self.epoch = next(_epochs)
        if self.built < len(self.sessions):
            self._extend()

    def tighten(self, low_last: float, high_started: float) -> None:
        """Exact bounds a call computed over the queued entries."""
        self.low_last, self.high_started = low_last, high_started

    def _write(self, i: int, s: Session) -> None:
        self.last[i] = s.last_activity
        self.low_last = min(self.low_last, s.last_activity)
        c2c = s.last_click_to_call
        self.c2c[i] = NONE_TIME if c2c is None else c2c
        self.hidden[i] = hidden_at(s)
        self.pageviews[i] = s.pageviews
        self.ordinal[i] = s.ordinal
        self.shared[i] = s.shared
        self.superseded[i] = s.superseded
        self.evidence[i] = evidence(s)

    def _extend(self) -> None:
        """Columns for the entries past `built`; dropped ones (None) get placeholders."""
        fresh = self.sessions[self.built:]
        queued = [s for s in fresh if s is not None]
        gap = len(fresh) - len(queued)  # dropped before ever being covered: all at the front
        self.ids += [""] * gap + [s.id for s in queued]
        self.visitors += [""] * gap + [s.visitor for s in queued]
        fresh_last = [s.last_activity for s in queued]
        fresh_started = [s.started_at for s in queued]
        self.last.extend([0.0] * gap + fresh_last)
        self.started.extend([0.0] * gap + fresh_started)
        self.c2c.extend([NONE_TIME] * gap + [NONE_TIME if s.last_click_to_call is None
                                            else s.last_click_to_call for s in queued])
        self.hidden.extend([NONE_TIME] * gap + [hidden_at(s) for s in queued])
        self.pageviews.extend([0] * gap + [s.pageviews for s in queued])
        self.ordinal.extend([0] * gap + [s.ordinal for s in queued])
        self.mobile += bytes(gap) + bytes([s.mobile for s in queued])
        self.shared += bytes(gap) + bytes([s.shared for s in queued])
        self.superseded += bytes(gap) + bytes([s.superseded for s in queued])
        self.evidence += bytes(gap) + bytes([evidence(s) for s in queued])
        self.built = len(self.sessions)
        self.low_last = min([self.low_last, *fresh_last])
        self.high_started = max([self.high_started, *fresh_started])

    def _columns(self) -> tuple[list[str], list[str], array[float], array[float], array[float],
                                array[float], array[int], array[int], bytearray, bytearray,
                                bytearray, bytearray]:
        return (self.ids, self.visitors, self.last, self.started, self.c2c, self.hidden,
                self.pageviews, self.ordinal, self.mobile, self.shared, self.superseded,
                self.evidence)

    def _compact(self) -> None:
        head = self.head
        del self.sessions[:head]
        for column in self._columns():
            del column[:head]
        self.built = max(0, self.built - head)
        self.base += head
        self.head = 0
