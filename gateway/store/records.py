"""Records the shells add to the write-behind stream beside the engine's own records."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gateway.engine.records import CallRecord

# A person reviewing a call looks at a handful of other sessions; past the best 20 the
# likelihoods are negligible, and keeping them all would make a 1,000-candidate call cost
# 1,000 rows. The engine still knows every candidate (an override may pick any session).
MAX_STORED_CANDIDATES = 20


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """A carrier's status callback for a call (Twilio status / Dial action, SIP outcome)."""

    call_id: str
    at: float
    status: str | None = None
    dial_status: str | None = None
    duration: int | None = None
    recording_url: str | None = None
    carrier: str | None = None  # "twilio" (the column's default), "sip"...


def for_storage(record: Any) -> Any:
    """The record as the spool and Postgres keep it (candidates capped, best first)."""
    if isinstance(record, CallRecord) and len(record.candidates) > MAX_STORED_CANDIDATES:
        return replace(record, candidates=record.candidates[:MAX_STORED_CANDIDATES],
                       candidate_count=max(record.candidate_count, len(record.candidates)))
    return record
