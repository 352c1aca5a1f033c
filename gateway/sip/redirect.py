"""The redirect decision for one INVITE: which number was dialled, who called, where to send
the call. Pure: it asks the engine and returns a response plan; the server does the I/O.

A tracking number answers `302 Moved Temporarily` with a Contact on the trunk's termination
host and the dialled number in `Diversion` (RFC 5806; `History-Info`, RFC 7044, optionally).
Anything that is not an active tracking number answers 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.engine import Engine
from gateway.engine.errors import EngineError, UnknownNumber
from gateway.engine.phones import parse_e164
from gateway.sip.codec import Request, uri_user

ALLOW = "INVITE, ACK, CANCEL, OPTIONS"
ACCEPT = "application/sdp"
# Caller identity headers, most trusted first (a trunk asserts P-Asserted-Identity).
CALLER_HEADERS = ("p-asserted-identity", "from")


@dataclass(frozen=True, slots=True)
class Plan:
    """The final answer for an INVITE and what to persist."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    records: tuple[Any, ...] = ()
    call: Any = None  # the engine's Call when attributed


def dialled(request: Request) -> str | None:
    """The tracking number: the Request-URI's user part, as E.164."""
    user = uri_user(request.uri)
    return parse_e164(user) if user else None


def caller(request: Request) -> str | None:
    for name in CALLER_HEADERS:
        value = request.header(name)
        if value:
            user = uri_user(value)
            number = parse_e164(user) if user else None
            if number is not None:
                return number
    return None


def plan_invite(engine: Engine, request: Request, *, call_id: str, at: float,
                termination: str | None, source_host: str, history_info: bool) -> Plan:
    """Attribute the call and build the 302, or 404 for anything not a tracking number."""
    to = dialled(request)
    if to is None:
        return Plan(404)
    try:
        info = engine.lookup(to)
        if not info.active:
            return Plan(404)
        call = engine.call(to=to, caller=caller(request), call_id=call_id, at=at)
    except UnknownNumber:
        return Plan(404)
    except EngineError:
        return Plan(400)
    host = termination or source_host
    contact = f"<sip:{call.forward_to}@{host}>"
    headers = [("Contact", contact),
               ("Diversion", f"<sip:{to}@{host}>;reason=unconditional;counter=1")]
    if history_info:
        headers += [("History-Info", f"<sip:{to}@{host}>;index=1"),
                    ("History-Info", f"<sip:{call.forward_to}@{host};cause=302>;index=1.1")]
    return Plan(302, tuple(headers), tuple(engine.drain()), call)


def options_headers() -> tuple[tuple[str, str], ...]:
    return (("Allow", ALLOW), ("Accept", ACCEPT))
