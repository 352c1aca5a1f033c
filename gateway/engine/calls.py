"""Attributing a call on a tracking number to the session most likely to have made it.

Candidates are the sessions shown the dialled number within the source's match window before
the call (those whose last activity is at most `match_window` before it). Each gets a
`scoring.features.Timeline`, the call a `CallContext`, and `scoring.model.score` gives one
likelihood per candidate plus "none of them". Candidates are ranked best first; ties go to the
most recent activity, then the smaller session id, so the order is deterministic. The best one
is attached whenever there is one. A call keeps its state (`CallEntry`, in the `CallBook`) for
idempotent retries, overrides, and the caller history that later calls' timelines use.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence

from gateway.engine.records import CallRecord, CandidateRecord
from gateway.engine.results import Call, Candidate
from gateway.engine.state import NumberSlot, Session
from gateway.engine.timelines import timeline
from scoring.features import CallContext, Timeline
from scoring.model import score

# Candidates kept on a call, best first: the call log's "other sessions" list. Past the first
# hundred the likelihoods are negligible and would only cost storage on every call.
MAX_LISTED_CANDIDATES = 100
# Candidates written into each CallRecord for the store: the call log shows the best ones
# ("check for other sessions"); past 20 the likelihoods round to zero. A frozen record per
# candidate is the costliest part of a call at thousands of calls a second.
RECORDED_CANDIDATES = 20
DEFAULT_CALL_RETENTION_S = 30 * 86400.0  # calls of a source no longer configured: 30 days
MAX_CALLER_HISTORY = 50  # latest calls kept per caller and site: ample for people, bounded for bots
PRUNE_STEP = 8  # stale sessions examined per append to a number's shown list (amortised O(1))


class CallEntry:
    """A call the engine has attributed (mutable: overrides change the match)."""

    __slots__ = ("at", "call_id", "caller", "candidates", "forward_to", "likelihood", "match",
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
        self.candidates: tuple[Candidate, ...] = ()
        self.total = 0  # candidates scored (the listed ones are the best of them)

    def attach(self, ranked: Sequence[Candidate], total: int | None = None,
               likelihood: float | None = None) -> None:
        """Keep the ranked candidates and attach the best one; `likelihood` is its visitor's
        (the sum over that visitor's sessions), defaulting to the session's own."""
        self.candidates = tuple(ranked[:MAX_LISTED_CANDIDATES])
        self.total = total if total is not None else len(ranked)
        if self.candidates:
            self.match, self.visitor, self.likelihood = self.candidates[0]
            if likelihood is not None:
                self.likelihood = likelihood

    def result(self) -> Call:
        return Call(self.call_id, self.site, self.source, self.forward_to, self.match,
                    self.visitor, self.likelihood, list(self.candidates))

    def record(self) -> CallRecord:
        return CallRecord(
            self.call_id, self.site, self.source, self.to, self.caller, self.forward_to, self.at,
            self.match, self.visitor, self.likelihood,
            tuple(CandidateRecord(*c) for c in self.candidates[:RECORDED_CANDIDATES]),
            self.total,
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
        head = shown[0]  # never empty: `session` was just appended and is never dropped
        if head.started_at >= since:
            return
        shown.popleft()
        if head.last_activity >= since or head is session:
            shown.append(head)  # started long ago but still active: look again later


def rank(slot: NumberSlot, ctx: CallContext,
         history: Sequence[CallEntry]) -> tuple[list[Candidate], int, float | None]:
    """Score the number's candidates; return the best MAX_LISTED_CANDIDATES best first, how
    many were scored, and the likelihood that the first one's visitor made the call.

    A person, not a session, makes a call: a visitor with two sessions on the number (a
    return visit) has the sum of their likelihoods. Candidates are ranked by their visitor's
    sum, then their own likelihood, then recency and id (deterministic), so the attached
    session is the likeliest session of the likeliest visitor, and the call's likelihood is
    that visitor's sum: the figure that is calibrated against who really called."""
    sessions, timelines = _candidates(slot, ctx.at, history)
    if not sessions:
        return [], 0, None
    likelihoods = score(ctx, timelines).likelihoods
    totals: dict[str, float] = {}
    for s, lik in zip(sessions, likelihoods, strict=True):
        totals[s.visitor] = totals.get(s.visitor, 0.0) + lik
    if len(totals) == len(sessions):
        order = _best_first(sessions, likelihoods)
    else:
        order = _best_first_by_visitor(sessions, likelihoods, totals)
    new = tuple.__new__  # a NamedTuple's own constructor is a Python function: 3x slower
    ranked = [new(Candidate, (sessions[i].id, sessions[i].visitor, likelihoods[i]))
              for i in order]
    return ranked, len(sessions), min(1.0, totals[sessions[order[0]].visitor])


def _candidates(slot: NumberSlot, at: float,
                history: Sequence[CallEntry]) -> tuple[list[Session], list[Timeline]]:
    """Sessions shown the number within the match window before `at`, with their timelines.

    The hot loop of a call (thousands of candidates in well under a millisecond): a session's
    cached timeline is reused when the call-dependent fields are unchanged.
    """
    source = slot.source
    since, idle = at - source.window, source.idle
    visitors = source.site.visitors
    matched = Counter(e.visitor for e in history if e.visitor is not None)
    sessions: list[Session] = []
    timelines: list[Timeline] = []
    for s in slot.shown:
        last = s.last_activity
        if last < since or s.started_at > at:
            continue
        latest = visitors.get(s.visitor)
        ordinal = s.ordinal if latest is None else latest.ordinal
        matches = matched.get(s.visitor, 0) if matched else 0
        live = last + idle > at
        t = s.timeline
        if (t is None or t.live is not live or t.caller_matches != matches
                or t.visitor_sessions != ordinal):
            t = s.timeline = timeline(s, live, matches, ordinal)
        sessions.append(s)
        timelines.append(t)
    return sessions, timelines


def _best_first_by_visitor(sessions: list[Session], likelihoods: Sequence[float],
                           totals: dict[str, float]) -> list[int]:
    """Like `_best_first`, but ranked by the visitor's summed likelihood first."""
    order = sorted(range(len(sessions)), key=lambda i: (
        -totals[sessions[i].visitor], -likelihoods[i], -sessions[i].last_activity,
        sessions[i].id))
    return order[:MAX_LISTED_CANDIDATES]


def _best_first(sessions: list[Session], likelihoods: Sequence[float]) -> list[int]:
    """Indices of the top MAX_LISTED_CANDIDATES by likelihood, ties by recency then id."""
    order = sorted(range(len(sessions)), key=likelihoods.__getitem__, reverse=True)
    start, end = 0, min(len(order), MAX_LISTED_CANDIDATES)
    while start < end:
        stop = start + 1
        value = likelihoods[order[start]]
        while stop < len(order) and likelihoods[order[stop]] == value:
            stop += 1
        if stop - start > 1:
            order[start:stop] = sorted(
                order[start:stop],
                key=lambda i: (-sessions[i].last_activity, sessions[i].id))
        start = stop
    return order[:end]
