"""What the engine knows about one candidate session when a call arrives.

This is the boundary between `gateway.engine` (which keeps the timelines) and the likelihood
model in `scoring.model`: the engine describes each session that was shown the dialled number
within the source's match window as a `Timeline`, plus one `CallContext`, and asks for
likelihoods. Many candidates at once may come as `TimelineColumns`: the same timelines stored
column by column, which is how the engine hands them over on its hot path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

# What the features mean, shared by the model's loop (`scoring.model`) and its numpy form
# (`scoring.vector`).
STEPS_PER_E = 16  # recency table resolution: 16 buckets per e-fold of (1 + gap)
MAX_GAP_S = 60 * 86_400.0  # the table ends past the 30-day match window; later gaps use its end
N_BUCKETS = int(math.log1p(MAX_GAP_S) * STEPS_PER_E) + 1
LIVE_S = 60.0  # two ping intervals (pings every 15-30 s): still on the page
C2C_RECENT_S = 30.0  # a tel: tap rings the gateway within seconds (traffic-model.md)
C2C_EARLIER_S = 1800.0  # a tap earlier in the visit, within the engine's 30-min idle timeout
HIDDEN_RECENT_S = 30.0  # the dialer hides the tab seconds before the call
PAGEVIEWS_CAP = 30  # engagement saturates; also bounds the pageview table


@dataclass(frozen=True, slots=True)
class Timeline:
    """One candidate session's history with the dialled number, as of the call."""

    session: str
    visitor: str
    assigned_at: float  # when the session was first shown the dialled number
    last_activity: float  # latest pageview / ping / click_to_call (>= assigned_at)
    live: bool  # the session still held the number at call time (within its idle timeout)
    mobile: bool
    shared: bool  # another session held the same number at some point while this one did
    pageviews: int = 1
    last_click_to_call: float | None = None  # latest tel: tap, if any
    hidden_at: float | None = None  # latest "hidden" after the last activity, if any
    holders_at_last_activity: int = 1  # sessions holding the number when this one was last active
    caller_matches: int = 0  # earlier calls from this caller ID attached to this visitor
    visitor_sessions: int = 1  # sessions this visitor has had on the site (returning > 1)
    # The likelihood the most confident of those earlier calls gave this visitor (their
    # attribution was right that often); read only when caller_matches > 0. 1.0: certain (a
    # match whose confidence is not known counts as certain).
    caller_likelihood: float = 1.0


@dataclass(frozen=True, slots=True)
class CallContext:
    """The call being attributed."""

    at: float
    caller: str | None  # E.164 caller ID, None when withheld
    idle_timeout: float  # the source's reservation idle timeout, seconds
    caller_seen_before: bool = False  # this caller ID has called this site before


NONE_TIME = float("nan")  # None in the optional-time columns of TimelineColumns


class TimelineColumns(Sequence[Timeline]):
    """The timelines of many candidates stored column by column: entry i of every column is
    candidate i. `scoring.model.score` reads the columns directly, with no `Timeline` per
    candidate; indexing or iterating gives the `Timeline` of each candidate (`row`).

    Why: a call may score thousands of candidates, and a server that reads one object per
    candidate (scattered over the heap, each holding pointers to more objects) spends its time
    on cache misses, not arithmetic; contiguous arrays kept current by the caller do not.

    Only the fields the model reads are columns. Optional times hold NaN for None (times are
    finite); booleans are 0/1; `caller_likelihood` entries are read only where
    `caller_matches` is nonzero. `evidence` must be nonzero for a candidate with a click_to_call,
    a hidden time, the shared flag or `visitor_sessions > 1` (it may be nonzero for others: it
    only lets the model skip tests that cannot apply). `row(i)` also needs the fields the model
    does not read (ids, `live`, `holders_at_last_activity`): a subclass provides
    them, and `TimelineColumns.of(timelines)` builds columns from ready `Timeline`s.

    Columns that are `array.array`s ("d" for times, "q" for counts) or `bytearray`s (flags)
    are read by numpy without a copy (`scoring.vector`); any other sequence is copied.
    """

    __slots__ = ("assigned_at", "caller_likelihood", "caller_matches", "evidence", "hidden_at",
                 "last_activity", "last_click_to_call", "mobile", "pageviews", "shared",
                 "visitor_sessions")

    def __init__(self, *, assigned_at: Sequence[float], last_activity: Sequence[float],
                 last_click_to_call: Sequence[float], hidden_at: Sequence[float],
                 mobile: Sequence[int], shared: Sequence[int], pageviews: Sequence[int],
                 caller_matches: Sequence[int], caller_likelihood: Sequence[float],
                 visitor_sessions: Sequence[int], evidence: Sequence[int]) -> None:
        self.evidence = evidence
        self.assigned_at = assigned_at
        self.last_activity = last_activity
        self.last_click_to_call = last_click_to_call
        self.hidden_at = hidden_at
        self.mobile = mobile
        self.shared = shared
        self.pageviews = pageviews
        self.caller_matches = caller_matches
        self.caller_likelihood = caller_likelihood
        self.visitor_sessions = visitor_sessions

    @classmethod
    def of(cls, timelines: Sequence[Timeline]) -> TimelineColumns:
        """Columns holding `timelines` (rows are the given objects)."""
        return _Rows(timelines)

    def row(self, i: int) -> Timeline:
        """Candidate i's `Timeline` (0 <= i < len(self))."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.last_activity)

    @overload
    def __getitem__(self, index: int) -> Timeline: ...

    @overload
    def __getitem__(self, index: slice) -> list[Timeline]: ...

    def __getitem__(self, index: int | slice) -> Timeline | list[Timeline]:
        positions = range(len(self))
        if isinstance(index, slice):
            return [self.row(i) for i in positions[index]]
        return self.row(positions[index])

    def __iter__(self) -> Iterator[Timeline]:
        return map(self.row, range(len(self)))


def _optional(value: float | None) -> float:
    return NONE_TIME if value is None else value


class _Rows(TimelineColumns):
    """Columns taken from ready Timeline objects (tests, tools)."""

    __slots__ = ("_rows",)

    def __init__(self, timelines: Sequence[Timeline]) -> None:
        rows = list(timelines)
        super().__init__(
            assigned_at=[t.assigned_at for t in rows],
            last_activity=[t.last_activity for t in rows],
            last_click_to_call=[_optional(t.last_click_to_call) for t in rows],
            hidden_at=[_optional(t.hidden_at) for t in rows],
            mobile=[int(t.mobile) for t in rows], shared=[int(t.shared) for t in rows],
            pageviews=[t.pageviews for t in rows],
            caller_matches=[t.caller_matches for t in rows],
            caller_likelihood=[t.caller_likelihood for t in rows],
            visitor_sessions=[t.visitor_sessions for t in rows],
            evidence=[int(t.last_click_to_call is not None or t.hidden_at is not None
                          or t.shared or t.visitor_sessions > 1) for t in rows],
        )
        self._rows = rows

    def row(self, i: int) -> Timeline:
        return self._rows[i]
