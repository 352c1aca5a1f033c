"""What engine calls return: plain frozen values, safe to hand to any shell."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Visit:
    """The answer to a page view: the number to display and the ids to keep."""

    visitor: str  # the visitor id to keep (a new one when none was given)
    session: str | None  # None: nothing tracked (bot, no matching source, site_number overflow)
    source: str | None  # source name, None when untracked
    number: str  # E.164 number to display
    formatted: str  # the same in national format, e.g. "(415) 555-0101"


class Candidate(NamedTuple):
    """A session that may have made the call, with its likelihood."""

    session: str
    visitor: str
    likelihood: float


@dataclass(frozen=True, slots=True)
class Call:
    """The attribution of a call; `candidates` are best first."""

    call_id: str
    site: str
    source: str
    forward_to: str
    match: str | None  # the attached session, None when there is no candidate
    visitor: str | None
    likelihood: float | None  # of the attached session; None when unmatched
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NumberInfo:
    """What the voice and SIP shells need to route a call to a tracking number."""

    number: str
    site: str
    source: str
    kind: str  # "online" | "offline"
    forward_to: str
    record: bool
    whisper: str | None
    ring_timeout: float
    active: bool  # the site and the source are both active


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One online source's pool at a moment (for metrics and the dashboard).

    reserved + cooling + free == numbers: a number is reserved while a session holding it is
    live, cooling for one idle timeout after its release, then free.
    """

    site: str
    source: str
    numbers: int
    reserved: int
    cooling: int
    free: int
    sharings: int  # times a session was given a number another live session held (since start)
    sessions: int  # sessions of this source held in memory (within retention)
    live: int  # sessions of this source live now
    overflowed: int  # visits that found the pool full under overflow_number / site_number
    owned: int = -1  # numbers this process may hand out (scale-out leases); -1: all of them
