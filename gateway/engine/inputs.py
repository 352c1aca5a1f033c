"""Checks on the arguments of engine calls: types, lengths, formats. Each failure is an
`InvalidInput` naming the argument, so a shell can answer 422 with the field and the reason."""

from __future__ import annotations

import math
import re

from gateway.engine.errors import InvalidInput
from gateway.engine.phones import parse_e164
from gateway.engine.records import ACTIVITY_KINDS

MAX_URL_LENGTH = 4096  # landing URLs and referrers: above any real page URL, bounds parsing work
MAX_USER_AGENT_LENGTH = 2048  # real user agents are under 500 characters
MAX_CALLER_LENGTH = 256  # caller ids: E.164 or a carrier's label ("anonymous", a SIP URI)
MAX_CALL_ID_LENGTH = 256  # Twilio CallSids are 34 characters; SIP Call-IDs can be long
MAX_BY_LENGTH = 128  # who made an override: a user name or API key label
MAX_ID_LENGTH = 128  # our ids are "v_"/"s_" + 22 characters; room for other issuers' ids
# A client-kept visitor id may be any short URL-safe token (ours, or an earlier version's).
_VISITOR = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# What Postgres cannot store as text: NUL, and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Caller ids carriers use for anonymous, restricted, unavailable and blocked callers (Twilio).
WITHHELD_CALLERS = frozenset(("+266696687", "+7378742833", "+2562533", "+86282452253"))


def at(value: object) -> float:
    """A finite epoch time in seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput("at", "expected a finite number of epoch seconds")
    return float(value)


def text(value: object, field: str, limit: int) -> str:
    """A non-empty string of at most `limit` characters, `storable`."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"expected a string, got {type(value).__name__}")
    if not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > limit:
        raise InvalidInput(field, f"longer than {limit} characters")
    return storable(value)


def storable(value: str) -> str:
    """`value` with each NUL and lone surrogate replaced by U+FFFD: the engine's records keep
    this text, and one record Postgres refuses would hold back the write-behind queue. Every
    id goes through here on the way in, lookups included, so they stay consistent. The shells
    refuse (HTTP: 422) or escape (SIP) such text first; this is the engine's own guarantee."""
    if "\x00" not in value and value.isascii():  # isascii is O(1): the usual case is one scan
        return value
    return _UNSTORABLE.sub("\ufffd", value)


def optional_text(value: object, field: str, limit: int) -> str | None:
    """None for None or "", else as `text`."""
    if value is None or value == "":
        return None
    return text(value, field, limit)


def user_agent(value: object) -> str:
    """The user agent; None becomes "" (which the bot table treats as a bot)."""
    return optional_text(value, "user_agent", MAX_USER_AGENT_LENGTH) or ""


def ident(value: object, field: str) -> str:
    """An id to look up (session, call): any non-empty string up to MAX_ID_LENGTH; one that
    was never issued is the caller's "unknown" error, not an invalid input."""
    return text(value, field, MAX_ID_LENGTH)


def visitor(value: object) -> str | None:
    """A client-kept visitor id (adopted as is), or None for a first visit."""
    if value is None:
        return None
    if not isinstance(value, str) or not _VISITOR.match(value):
        raise InvalidInput("visitor", "expected an id of 1-128 characters of A-Z, a-z, 0-9, _ or -")
    return value


def kind(value: object) -> str:
    if value not in ACTIVITY_KINDS:
        raise InvalidInput("kind", f"expected one of {', '.join(ACTIVITY_KINDS)}")
    return str(value)


def caller(value: object) -> str | None:
    """The caller's number in E.164, or None when withheld or not a valid number."""
    if value is None or value == "":
        return None
    raw = text(value, "caller", MAX_CALLER_LENGTH)
    e164 = parse_e164(raw)
    return None if e164 is None or e164 in WITHHELD_CALLERS else e164
