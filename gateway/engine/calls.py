"""Attributing a call on a tracking number to the session most likely to have made it.

Candidates are the sessions shown the dialled number within the source's match window before
the call (those whose last activity is at most `match_window` before it). Their timelines come
as `scoring.features.TimelineColumns` (`candidates.gather`), the call as a `CallContext`, and
`scoring.model.score` gives one likelihood per candidate plus "none of them". Candidates are
ranked best first; ties go to the most recent activity, then the smaller session id, so the
order is deterministic. The best one is attached whenever there is one. A call keeps its state
(`CallEntry`, in the `CallBook`) for idempotent retries, overrides, and the caller history that
later calls' timelines use.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import fields
from functools import partial

from gateway.engine.candidates import Batch, gather
from gateway.engine.records import CallRecord, CandidateRecord
from gateway.engine.results import Call, Candidate
from gateway.engine.state import NumberSlot, Session
from scoring.features import CallContext
from scoring.model import score

# Candidates written into each CallRecord for the store: the call log shows the best ones
# ("check for other sessions"); past 20 the likelihoods round to zero. A frozen record per
# candidate is the costliest part of a call at thousands of calls a second.
RECORDED_CANDIDATES = 20
# Candidates kept on a call in memory, best first: the same ones the store keeps, so a call
# reads the same before and after a restart. Listing, ordering and handing back more (it was
# 100) cost a third of engine.call() on a number shown 100 sessions, for nothing stored.
MAX_LISTED_CANDIDATES = RECORDED_CANDIDATES
DEFAULT_CALL_RETENTION_S = 30 * 86400.0  # calls of a source no longer configured: 30 days
MAX_CALLER_HISTORY = 50  # latest calls kept per caller and site: ample for people, bounded for bots
PRUNE_STEP = 8  # stale sessions examined per append to a number's shown list (amortised O(1))
DOUBLE = array("d").itemsize


Listed = tuple[str, str, float]  # (session, visitor, likelihood) of a listed candidate
# The listed candidates as columns, best first: sessions, visitors, and the likelihoods as the
# bytes of an array("d") (bytes, unlike arrays, are no work for the garbage collector).
Columns = tuple[tuple[str, ...], tuple[str, ...], bytes]
NOTHING_LISTED: Columns = ((), (), b"")
_make_candidate = partial(tuple.__new__, Candidate)  # NamedTuple's own __new__ is Python: slow


class CallEntry:
    """A call the engine has attributed (mutable: overrides change the match).

    Its listed candidates are kept as three columns of plain tuples and bytes: the engine
    holds every call of the last 30 days, and a kept `Candidate` per candidate (a tuple
    subclass, which the garbage collector never stops tracking) made every full collection
    slower as calls accumulated: 1.2 million of them after 12,000 calls, 175 ms a collection.
    """

    __slots__ = ("at", "call_id", "caller", "forward_to", "likelihood", "listed", "match",
                 "site", "source", "to", "total", "visitor")

    def __init__(self, call_id: str, *, site: str, source: str, to: str, caller: str | None,
                 forward_to: str, at: float) -> None:
        self.call_id = call_id
        self.site = site
        self.source = source
        self.to = to
        self.caller = caller
        self.forward_to = forward_to
        self.at = at
        self.match: str | None = None
        self.visitor: str | None = None
        self.likelihood: float | None = None
        self.listed: Columns = NOTHING_LISTED  # the best candidates, best first
        self.total = 0  # candidates scored (the listed ones are the best of them)

    @property
    def candidates(self) -> list[Listed]:
        """The listed candidates, best first."""
        sessions, visitors, likelihoods = self.listed
        return list(zip(sessions, visitors, array("d", likelihoods), strict=True))

    def attach(self, listed: Columns, total: int, likelihood: float | None) -> None:
        """Keep the ranked candidates (at most MAX_LISTED_CANDIDATES) and attach the best one;
        `likelihood` is its visitor's (the sum over that visitor's sessions)."""
        self.listed = listed
        self.total = total
        sessions, visitors, _ = listed
        if sessions:
            self.match, self.visitor, self.likelihood = sessions[0], visitors[0], likelihood

    def result(self) -> Call:
        sessions, visitors, likelihoods = self.listed
        candidates = list(map(_make_candidate, zip(sessions, visitors, array("d", likelihoods),
                                                   strict=True)))
        return Call(self.call_id, self.site, self.source, self.forward_to, self.match,
                    self.visitor, self.likelihood, candidates)

    def record(self) -> CallRecord:
        sessions, visitors, likelihoods = self.listed
        n = min(len(sessions), RECORDED_CANDIDATES)
        return CallRecord(
            self.call_id, self.site, self.source, self.to, self.caller, self.forward_to, self.at,
            self.match, self.visitor, self.likelihood,
            tuple(map(candidate_record, sessions[:n], visitors[:n],
                      array("d", likelihoods[:n * DOUBLE]))),
            self.total,
        )


def _record_builder() -> Callable[[str, str, float], CandidateRecord]:
    """`CandidateRecord(...)` writing its slots directly: a frozen dataclass's `__init__` goes
    through `object.__setattr__` per field, twice as slow, and a call records 20 of them."""
    new = object.__new__
    set_session, set_visitor, set_likelihood = (
        CandidateRecord.__dict__[name].__set__ for name in ("session", "visitor", "likelihood"))

    def build(session: str, visitor: str, likelihood: float) -> CandidateRecord:
        r: CandidateRecord = new(CandidateRecord)
        set_session(r, session)
        set_visitor(r, visitor)
        set_likelihood(r, likelihood)
        return r

    return build


candidate_record = (
    _record_builder()
    if tuple(f.name for f in fields(CandidateRecord)) == ("session", "visitor", "likelihood")
    else CandidateRecord
)


class CallBook:
    """The calls held in memory: by id (idempotent retries, overrides), by caller and site (the
    caller history), and oldest first (to forget those past their retention)."""

    __slots__ = ("_aging", "_by_id", "_callers")

    def __init__(self) -> None:
        self._by_id: dict[str, CallEntry] = {}
        self._aging: deque[CallEntry] = deque()
        self._callers: dict[tuple[str, str], list[CallEntry]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, call_id: str) -> CallEntry | None:
        return self._by_id.get(call_id)

    def history(self, site: str, caller: str | None) -> list[CallEntry]:
        """Earlier calls from this caller to this site, oldest first (at most
        MAX_CALLER_HISTORY); none for a withheld caller."""
        return [] if caller is None else self._callers.get((site, caller), [])

    def keep(self, entry: CallEntry, now: float, retention: Callable[[CallEntry], float]) -> None:
        """Remember a call; forget a few whose `retention` has passed by `now`."""
        self._by_id[entry.call_id] = entry
        self._aging.append(entry)
        if entry.caller is not None:
            history = self._callers.setdefault((entry.site, entry.caller), [])
            history.append(entry)
            if len(history) > MAX_CALLER_HISTORY:
                del history[0]
        for _ in range(PRUNE_STEP):
            head = self._aging[0]
            if head.at + retention(head) >= now:
                return
            self._forget(self._aging.popleft())

    def _forget(self, entry: CallEntry) -> None:
        del self._by_id[entry.call_id]
        key = (entry.site, entry.caller or "")
        history = self._callers.get(key, [])
        if entry in history:
            history.remove(entry)
            if not history:
                del self._callers[key]


def remember(slot: NumberSlot, session: Session, at: float) -> None:
    """Add a session to the number's shown list, dropping a few that left the match window."""
    shown = slot.shown
    shown.append(session)
    since = at - slot.source.window
    for _ in range(PRUNE_STEP):
        head = shown.first()  # never empty: `session` was just appended and is never dropped
        if head.started_at >= since:
            return
        shown.popleft()
        if head.last_activity >= since or head is session:
            shown.append(head)  # started long ago but still active: look again later


def rank(slot: NumberSlot, ctx: CallContext,
         history: Sequence[CallEntry]) -> tuple[Columns, int, float | None]:
    """Score the number's candidates; return the best MAX_LISTED_CANDIDATES best first, how
    many were scored, and the likelihood that the first one's visitor made the call.

    A person, not a session, makes a call: a visitor with two sessions on the number (a
    return visit) has the sum of their likelihoods. Candidates are ranked by their visitor's
    sum, then their own likelihood, then recency and id (deterministic), so the attached
    session is the likeliest session of the likeliest visitor, and the call's likelihood is
    that visitor's sum: the figure that is calibrated against who really called."""
    batch = gather(slot, ctx.at, [(e.visitor, _confidence(e)) for e in history])
    if batch is None:
        return NOTHING_LISTED, 0, None
    likelihoods = score(ctx, batch, model=slot.source.model).likelihoods
    totals = _visitor_totals(likelihoods, batch.repeats)
    best = _best_first(batch, likelihoods, totals)
    sessions, visitors = batch.listed(best)
    listed = (sessions, visitors, array("d", map(likelihoods.__getitem__, best)).tobytes())
    return listed, len(batch), min(1.0, totals[best[0]])


def _confidence(entry: CallEntry) -> float:
    """How sure an earlier call's attribution is, for the caller history: its likelihood, or 1
    when a user chose the session (an override: the match is not the best listed candidate) or
    no likelihood was computed."""
    sessions = entry.listed[0]
    if entry.likelihood is None or not sessions or entry.match != sessions[0]:
        return 1.0
    return entry.likelihood


def _visitor_totals(likelihoods: Sequence[float],
                    repeats: list[list[int]]) -> Sequence[float]:
    """Each candidate's visitor's summed likelihood (added up in candidate order)."""
    if not repeats:
        return likelihoods
    totals = list(likelihoods)
    for members in repeats:
        total = 0.0
        for i in members:
            total += likelihoods[i]
        for i in members:
            totals[i] = total
    return totals


def _best_first(batch: Batch, likelihoods: Sequence[float], totals: Sequence[float]) -> list[int]:
    """Indices of the top MAX_LISTED_CANDIDATES by visitor total, then likelihood, recency and
    session id. All C-speed: a sort of the totals gives the threshold of the top ones, stable
    sorts by recency, likelihood and total order them; ids are read only for exact ties."""
    chosen: Sequence[int] = range(len(totals))
    if len(totals) > MAX_LISTED_CANDIDATES:
        threshold = sorted(totals, reverse=True)[MAX_LISTED_CANDIDATES - 1]
        chosen = [i for i, t in enumerate(totals) if t >= threshold]
    last = batch.last_activity
    order = sorted(chosen, key=last.__getitem__, reverse=True)  # stable: ties keep their order
    order.sort(key=likelihoods.__getitem__, reverse=True)
    if totals is not likelihoods:
        order.sort(key=totals.__getitem__, reverse=True)
    lasts = list(map(last.__getitem__, order))
    if len(set(lasts)) < len(lasts):  # equal recency: maybe ties in all three keys
        _by_id_within_ties(order, lasts, likelihoods, totals, batch)
    return order[:MAX_LISTED_CANDIDATES]


def _by_id_within_ties(order: list[int], lasts: list[float], likelihoods: Sequence[float],
                       totals: Sequence[float], batch: Batch) -> None:
    """Candidates equal in total, likelihood and recency are adjacent in `order` (`lasts` are
    their recencies): put the smaller session id first. Runs past the listed ones can stay."""
    start, end, n = 0, min(len(order), MAX_LISTED_CANDIDATES), len(order)
    while start < end:
        stop, first = start + 1, order[start]
        last, likelihood, total = lasts[start], likelihoods[first], totals[first]
        while (stop < n and lasts[stop] == last and likelihoods[order[stop]] == likelihood
               and totals[order[stop]] == total):
            stop += 1
        if stop - start > 1:
            order[start:stop] = sorted(order[start:stop], key=batch.session_id)
        start = stop
