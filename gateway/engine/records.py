"""What the engine tells the store: records to persist, and states to restore from.

The engine never does I/O. Every change worth persisting is appended as a record, in order,
and `Engine.drain()` hands them to the write-behind writer. At start the store rebuilds the
engine with `Engine.restore_sessions(SessionState...)` and `Engine.restore_calls(CallState...)`.

How a `SessionState` follows from the records of one session:
- `started_at` = SessionStarted.at, `last_activity` = the latest of SessionStarted.at and every
  SessionEvent of kind "pageview", "ping" or "click_to_call";
- `pageviews` = 1 + the "pageview" events; `last_click_to_call` = the latest "click_to_call";
- `hidden_at` = the latest "hidden" (it never extends `last_activity`);
- `shared` = SessionStarted.shared, or any "shared" event: a "shared" event means another
  session was later given this session's number while it was live. It is not activity and
  must not move `last_activity`.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVITY_KINDS = ("pageview", "ping", "click_to_call", "hidden")  # what clients may send
SHARED_KIND = "shared"  # emitted by the engine only: the session's number became shared


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """A new session was shown a tracking number."""

    session: str
    visitor: str
    site: str
    source: str
    number: str  # E.164 number shown
    at: float
    landing_url: str
    referrer: str | None
    user_agent: str
    mobile: bool
    shared: bool  # another live session held the number when this one got it
    returning: bool  # the client sent a visitor id (not a first visit)
    attribution: tuple[tuple[str, str], ...]  # click ids and utm_* of the landing, by key


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """Activity on a session ("pageview", "ping", "click_to_call", "hidden"), or "shared"."""

    session: str
    kind: str
    at: float


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    session: str
    visitor: str
    likelihood: float


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call was attributed (match None: to its source alone)."""

    call_id: str
    site: str
    source: str
    to: str
    caller: str | None
    forward_to: str
    at: float
    match: str | None
    visitor: str | None
    likelihood: float | None
    candidates: tuple[CandidateRecord, ...]  # best first, at most RECORDED_CANDIDATES
    candidate_count: int = 0  # every candidate scored (the record keeps the best of them)


@dataclass(frozen=True, slots=True)
class MatchOverride:
    """A user attached a call to another session."""

    call_id: str
    session: str
    visitor: str
    previous: str | None
    by: str
    at: float


Record = SessionStarted | SessionEvent | CallRecord | MatchOverride


@dataclass(frozen=True, slots=True)
class SessionState:
    """A session as persisted, to rebuild the engine at start (see the module docstring)."""

    session: str
    visitor: str
    site: str
    source: str
    number: str
    started_at: float
    last_activity: float
    mobile: bool
    shared: bool
    pageviews: int
    last_click_to_call: float | None
    hidden_at: float | None


@dataclass(frozen=True, slots=True)
class CallState:
    """A call as persisted, for idempotent retries and the caller history after a restart."""

    call_id: str
    site: str
    to: str
    caller: str | None
    at: float
    source: str
    match: str | None
    visitor: str | None
    likelihood: float | None = None
