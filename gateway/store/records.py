"""Records the shells add to the write-behind stream beside the engine's own records."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """A carrier's status callback for a call (Twilio status / Dial action, SIP outcome)."""

    call_id: str
    at: float
    status: str | None = None
    dial_status: str | None = None
    duration: int | None = None
    recording_url: str | None = None
