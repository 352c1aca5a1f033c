"""What the engine knows about one candidate session when a call arrives.

This is the boundary between `gateway.engine` (which keeps the timelines) and the likelihood
model in `scoring.model`: the engine fills a `Timeline` per session that was shown the dialled
number within the source's match window, plus one `CallContext`, and asks for likelihoods.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class CallContext:
    """The call being attributed."""

    at: float
    caller: str | None  # E.164 caller ID, None when withheld
    idle_timeout: float  # the source's reservation idle timeout, seconds
    caller_seen_before: bool = False  # this caller ID has called this site before
