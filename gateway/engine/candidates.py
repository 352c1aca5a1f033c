"""The candidates of one call: `scoring.features.TimelineColumns` sliced from the dialled
number's `Shown` arrays (see shown.py), plus the fields that depend on the call.

Candidates are the sessions shown the number whose last activity is within the source's match
window before the call and that started by then, in the order the number was shown (oldest
first). Two fields of a candidate's timeline depend on more than the session:
- `visitor_sessions`: the ordinal of the visitor's latest session. For a session that is its
  visitor's latest (not `superseded`) that is its own ordinal, already in the arrays; only
  superseded candidates look the visitor up.
- `caller_matches`: earlier calls from this caller attached to the candidate's visitor, and
  `caller_likelihood`: how sure the surest of them was. Only the few visitors of the caller's
  history are looked up: their latest session, and the superseded candidates.
A visitor with two or more candidate sessions has at least one superseded, so the same pass
finds the visitors whose likelihoods `calls.rank` must add up (`Batch.repeats`).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from operator import itemgetter

from gateway.engine.shown import Shown
from gateway.engine.state import NumberSlot, Session
from gateway.engine.timelines import timeline
from scoring.features import Timeline, TimelineColumns

INT_BYTES = array("q").itemsize
DOUBLE_BYTES = array("d").itemsize


class Batch(TimelineColumns):
    """One call's candidates by column; `row(i)` builds candidate i's `Timeline` on demand."""

    __slots__ = ("_at", "_evidence", "_idle", "_likelihoods", "_matches", "_ordinals",
                 "_positions", "_shown", "repeats")

    def __init__(self, shown: Shown, positions: Sequence[int], *, at: float, idle: float,
                 columns: list[Sequence[float]], flags: list[Sequence[int]],
                 ordinals: array[int], evidence: bytearray) -> None:
        last, c2c, hidden, started = columns
        mobile, shared, pageviews = flags
        matches = array("q", bytes(INT_BYTES * len(positions)))
        likelihoods = array("d", bytes(DOUBLE_BYTES * len(positions)))  # read where matched
        super().__init__(assigned_at=started, last_activity=last, last_click_to_call=c2c,
                         hidden_at=hidden, mobile=mobile, shared=shared, pageviews=pageviews,
                         caller_matches=matches, caller_likelihood=likelihoods,
                         visitor_sessions=ordinals, evidence=evidence)
        # The same arrays, writable (filled by `_link_visitors`).
        self._matches, self._ordinals, self._evidence = matches, ordinals, evidence
        self._likelihoods = likelihoods
        self._shown = shown
        self._positions = positions  # each candidate's index in the Shown arrays
        self._at = at
        self._idle = idle
        # Candidate indices of each visitor with two or more candidate sessions, in order.
        self.repeats: list[list[int]] = []

    def session(self, i: int) -> Session:
        s = self._shown.sessions[self._positions[i]]
        assert s is not None
        return s

    def listed(self, indices: Sequence[int]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The session ids and visitors of the candidates at `indices`, in that order."""
        if len(indices) < 2:  # itemgetter of one item returns it bare, not in a tuple
            return (tuple(map(self.session_id, indices)),
                    tuple(self._shown.visitors[self._positions[i]] for i in indices))
        pick = itemgetter(*[self._positions[i] for i in indices])
        return pick(self._shown.ids), pick(self._shown.visitors)

    def session_id(self, i: int) -> str:
        return self._shown.ids[self._positions[i]]

    def row(self, i: int) -> Timeline:
        s = self.session(i)
        live = s.last_activity + self._idle > self._at
        matches = self.caller_matches[i]
        t = timeline(s, live, matches, self.visitor_sessions[i])
        return replace(t, caller_likelihood=self.caller_likelihood[i]) if matches else t

    def candidate_index(self, s: Session) -> int:
        """The candidate index of `s`, or -1 when it is not a candidate."""
        p = self._shown.index(s)
        if p < 0:
            return -1
        positions = self._positions
        if isinstance(positions, range):
            return p - positions.start if p in positions else -1
        i = bisect_left(positions, p)
        return i if i < len(positions) and positions[i] == p else -1


def gather(slot: NumberSlot, at: float,
           history: Iterable[tuple[str | None, float]]) -> Batch | None:
    """The candidates of a call on `slot` at `at` (None when there is none). `history`: the
    visitors earlier calls from this caller were attached to (None for unmatched calls), each
    with how sure that attribution was (0..1)."""
    shown = slot.shown
    lo, hi = shown.head, len(shown.sessions)
    if lo == hi:
        return None
    shown.refresh()
    since = at - slot.source.window
    last, started = shown.last[lo:hi], shown.started[lo:hi]
    positions: Sequence[int]
    if not (shown.low_last >= since and shown.high_started <= at):  # the bounds may be loose
        shown.tighten(min(last), max(started))
    if shown.low_last >= since and shown.high_started <= at:  # the usual case: every one
        positions = range(lo, hi)
        columns: list[Sequence[float]] = [last, shown.c2c[lo:hi], shown.hidden[lo:hi],
                                          started]
        flags: list[Sequence[int]] = [shown.mobile[lo:hi], shown.shared[lo:hi],
                                      shown.pageviews[lo:hi]]
        ordinals = shown.ordinal[lo:hi]
        evidence = shown.evidence[lo:hi]
    else:
        positions = [lo + i for i, (t, s) in enumerate(zip(last, started, strict=True))
                     if not (t < since or s > at)]
        if not positions:
            return None
        columns = [[c[p] for p in positions] for c in (shown.last, shown.c2c, shown.hidden,
                                                       shown.started)]
        flags = [[c[p] for p in positions] for c in (shown.mobile, shown.shared,
                                                     shown.pageviews)]
        ordinals = array("q", [shown.ordinal[p] for p in positions])
        evidence = bytearray([shown.evidence[p] for p in positions])
    batch = Batch(shown, positions, at=at, idle=slot.source.idle, columns=columns, flags=flags,
                  ordinals=ordinals, evidence=evidence)
    matched: Counter[str] = Counter()
    surest: dict[str, float] = {}
    for visitor, likelihood in history:
        if visitor is not None:
            matched[visitor] += 1
            surest[visitor] = max(likelihood, surest.get(visitor, 0.0))
    _link_visitors(batch, slot, matched, surest)
    return batch


def _link_visitors(batch: Batch, slot: NumberSlot, matched: Counter[str],
                   surest: dict[str, float]) -> None:
    """Fill the call-dependent fields and `repeats` (see the module docstring)."""
    visitors = slot.source.site.visitors
    sessions_of: dict[str, list[int]] = {}
    for i in _superseded(batch):
        s = batch.session(i)
        latest = visitors.get(s.visitor)
        batch._ordinals[i] = s.ordinal if latest is None else latest.ordinal
        batch._evidence[i] = 1
        sessions_of.setdefault(s.visitor, []).append(i)
    for visitor, superseded in sessions_of.items():
        members = _with_latest(batch, slot, visitor, superseded)
        if len(members) > 1:
            batch.repeats.append(members)
    if len(matched) > len(batch):  # fewer candidates than visitors to look for
        for i, p in enumerate(batch._positions):
            visitor = batch._shown.visitors[p]
            batch._matches[i] = matched.get(visitor, 0)
            batch._likelihoods[i] = surest.get(visitor, 0.0)
        return
    for visitor, count in matched.items():
        for i in _with_latest(batch, slot, visitor, sessions_of.get(visitor, [])):
            batch._matches[i] = count
            batch._likelihoods[i] = surest[visitor]


def _with_latest(batch: Batch, slot: NumberSlot, visitor: str, superseded: list[int]) -> list[int]:
    """The candidate indices of `visitor`: its `superseded` ones, and its latest session when
    that is a candidate too (the only one of its sessions that is not superseded)."""
    latest = slot.source.site.visitors.get(visitor)
    if latest is None or latest.superseded or latest.slot is not slot:
        return superseded
    own = batch.candidate_index(latest)
    return superseded if own < 0 else sorted([*superseded, own])


def _superseded(batch: Batch) -> list[int]:
    """Candidate indices of the superseded candidates, in order (a C-speed scan)."""
    flags = batch._shown.superseded
    positions = batch._positions
    lo, hi = (positions.start, positions.stop) if isinstance(positions, range) else (
        positions[0], positions[-1] + 1)
    found = []
    p = flags.find(1, lo, hi)
    while p >= 0:
        found.append(p)
        p = flags.find(1, p + 1, hi)
    if isinstance(positions, range):
        return [p - lo for p in found]
    wanted = set(found)
    return [i for i, p in enumerate(positions) if p in wanted]
