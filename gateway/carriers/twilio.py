"""Twilio-style voice webhooks: signature checks and TwiML, built with the `twilio` library.

Signatures are computed over the URL the carrier used, which behind TLS termination or a proxy
is not the URL this process sees: it is rebuilt from the configured public base URL
(`DNI_PUBLIC_URL`) plus the raw path and query exactly as sent. Several secrets may be valid at
once (rotation); SignalWire signs the same way with its own key and header.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from twilio.request_validator import (
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.voice_response import Dial, VoiceResponse

TWILIO_HEADER = "X-Twilio-Signature"
SIGNALWIRE_HEADER = "X-SignalWire-Signature"
MAX_SIGNATURE_LEN = 256  # base64 of a SHA-256 HMAC is 44 characters; anything longer is junk
# Caller IDs carriers send for withheld numbers (Twilio documents "anonymous" and these).
WITHHELD = frozenset({"", "anonymous", "restricted", "unknown", "private", "unavailable",
                      "+266696687", "+86282452253", "+7378742833", "+2562533"})


@dataclass(frozen=True, slots=True)
class Secrets:
    twilio: tuple[str, ...]
    signalwire: tuple[str, ...]


def signature_valid(secrets: Secrets, url: str, params: object,
                    headers: Mapping[str, str]) -> bool:
    """True when any configured secret signs (url, params) as the request's header says."""
    algorithm = get_signature_algorithm(headers.get(SIGNATURE_SETTINGS_HEADER))
    candidates: list[tuple[str, Sequence[str]]] = [
        (headers.get(SIGNALWIRE_HEADER, ""), secrets.signalwire),
        (headers.get(TWILIO_HEADER, ""), (*secrets.twilio, *secrets.signalwire)),
    ]
    for signature, keys in candidates:
        if not signature or len(signature) > MAX_SIGNATURE_LEN:
            continue
        # Each check is constant-time in the signature (twilio's `compare`); trying every key
        # keeps the time independent of which key matched.
        results = [RequestValidator(k).validate(url, params, signature, algorithm) for k in keys]
        if any(results):
            return True
    return False


def callback_url(base: str, path: str, query: Mapping[str, str]) -> str:
    """An absolute callback URL whose query keys are sorted, as Twilio re-sorts them before
    signing: otherwise the signature of the callback would not verify."""
    q = urlencode(sorted(query.items()))
    return f"{base}{path}?{q}" if q else f"{base}{path}"


@dataclass(frozen=True, slots=True)
class Forward:
    forward_to: str
    caller_id: str | None
    ring_timeout: int
    action_url: str
    record: bool
    whisper_url: str | None


def forward(f: Forward) -> str:
    """`<Dial>` the business with the caller's ID passed through; ring on the caller's side
    until the business answers (answerOnBridge), so the caller is billed from the answer."""
    response = VoiceResponse()
    dial = Dial(action=f.action_url, method="POST", timeout=f.ring_timeout,
                answer_on_bridge=True, caller_id=f.caller_id,
                record="record-from-answer-dual" if f.record else None)
    dial.number(f.forward_to, url=f.whisper_url, method="POST" if f.whisper_url else None)
    response.append(dial)
    return str(response)


def reject() -> str:
    """`<Reject>` as the first verb: nothing is answered or billed."""
    response = VoiceResponse()
    response.reject(reason="rejected")
    return str(response)


def whisper(text: str) -> str:
    response = VoiceResponse()
    response.say(text)
    return str(response)


def empty() -> str:
    return str(VoiceResponse())


def caller_number(raw: str | None) -> str | None:
    """The caller's number as sent, or None when the carrier marks it withheld."""
    if raw is None:
        return None
    value = raw.strip()
    return None if value.lower() in WITHHELD else value
