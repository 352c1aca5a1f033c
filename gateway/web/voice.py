"""Voice webhooks: attribute a call before it connects and answer how to forward it.

The answer never waits on the database (fail open): the engine attributes from memory, the
call record is fsync'd to the local spool and queued for Postgres, and the TwiML goes back. A
retried webhook (same CallSid) gets the same TwiML and records nothing twice, because
`engine.call` is idempotent per call id.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDict, MultiDictProxy

from gateway import log
from gateway.carriers import twilio
from gateway.engine.errors import UnknownNumber
from gateway.engine.phones import parse_e164
from gateway.settings import Settings
from gateway.store.records import CallUpdate
from gateway.web import validate
from gateway.web.errors import ApiError
from gateway.web.keys import METRICS, SETTINGS, STATE

STATUS_PATH = "/v1/voice/twilio/status"
WHISPER_PATH = "/v1/voice/twilio/whisper"
MAX_FIELD = 256  # Twilio's longest fields (URLs aside) are tens of characters
# Durations are seconds: 9 digits (31 years) is past any call and fits Postgres' int.
MAX_DURATION_DIGITS = 9
MAX_PARSE_DETAIL = 160  # characters of a parser's complaint echoed back in a 400
TWIML = "application/xml"

_log = log.get("gateway.web.voice")


def _secrets(settings: Settings) -> twilio.Secrets:
    return twilio.Secrets(settings.twilio_auth_tokens, settings.signalwire_signing_keys)


def public_base(request: web.Request) -> str:
    """The base URL carriers use: DNI_PUBLIC_URL, else what this request says it reached."""
    configured = request.app[SETTINGS].public_url
    return configured if configured else f"{request.scheme}://{request.host}"


async def verified_form(request: web.Request) -> MultiDictProxy[str]:
    """The form fields of a request whose carrier signature checks out; 403 otherwise.

    A body that cannot be read at all is a 4xx (`_read_form`): there are no fields to check
    a signature over. A signed field holding text Postgres cannot store (a NUL) is a 422, as
    on the website API (`validate`): such text would block the write-behind queue. Carriers
    never send either; the signature is checked first, so an unsigned request learns nothing
    but 403."""
    form = await _read_form(request)
    fields = MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))
    url = public_base(request) + request.raw_path
    if not twilio.signature_valid(_secrets(request.app[SETTINGS]), url, fields, request.headers):
        _log.warning("webhook_signature_refused", path=request.path)
        raise ApiError(403, "missing or invalid carrier signature",
                       field=twilio.TWILIO_HEADER)
    validate.storable_fields(fields.items())
    return fields


async def _read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The posted form; 415 for an unknown charset, 400 for a body that does not parse (bad
    UTF-8, a multipart body without boundary, with a malformed part or transfer encoding)."""
    try:
        form: MultiDictProxy[Any] = await validate.read_form(request)
    except LookupError as exc:  # codecs.lookup() of the body's or a part's charset
        raise ApiError(415, f"unsupported charset: {_detail(exc)}", field="Content-Type") from None
    except HttpProcessingError as exc:  # a multipart part with a malformed header
        raise ApiError(400, f"malformed multipart body: {_detail(exc.message)}",
                       field="body") from None
    except (ValueError, RuntimeError) as exc:  # RuntimeError: unknown Content-Transfer-Encoding
        raise ApiError(400, f"malformed form body: {_detail(exc)}", field="body") from None
    return form


def _detail(problem: object) -> str:
    return str(problem)[:MAX_PARSE_DETAIL]


def _field(form: MultiDictProxy[str], name: str, required: bool = True) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(422, f"{name} is required", field=name)
        return None
    if len(value) > MAX_FIELD:
        raise ApiError(422, f"{name} is too long", field=name)
    return value


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type=TWIML)


def _rejected(call_id: str, to: str, reason: str, request: web.Request) -> web.Response:
    _log.warning("call_rejected", call_id=call_id, to=to, reason=reason)
    request.app[METRICS].calls.labels("twilio", "rejected").inc()
    return _twiml(twilio.reject())


async def inbound(request: web.Request) -> web.Response:
    form = await verified_form(request)
    call_id = _field(form, "CallSid")
    to_raw = _field(form, "To")
    assert call_id is not None and to_raw is not None
    caller_raw = twilio.caller_number(_field(form, "From", required=False))
    caller = parse_e164(caller_raw) if caller_raw else None
    to = parse_e164(to_raw)
    state = request.app[STATE]
    engine = state.engine
    if engine is None:
        raise ApiError(503, "engine not loaded yet")
    if to is None:
        return _rejected(call_id, to_raw[:32], "not a phone number", request)
    started = time.perf_counter()
    try:
        info = engine.lookup(to)
        if not info.active:
            return _rejected(call_id, to, "inactive", request)
        call = engine.call(to=to, caller=caller, call_id=call_id, at=time.time())
    except UnknownNumber:
        return _rejected(call_id, to, "unknown number", request)
    decided = time.perf_counter() - started
    records = engine.drain()
    durable = await state.writer.add_durable(records) if records else True
    _log_call(request, call, decided, durable, retried=not records)
    return _twiml(twilio.forward(_forward(request, info, call, caller)))


def _forward(request: web.Request, info: Any, call: Any, caller: str | None) -> twilio.Forward:
    base = public_base(request)
    query = {"site": info.site}
    whisper_url = None
    if info.whisper:
        whisper_url = twilio.callback_url(base, WHISPER_PATH, {"number": info.number})
    return twilio.Forward(
        forward_to=call.forward_to, caller_id=caller, ring_timeout=int(info.ring_timeout),
        action_url=twilio.callback_url(base, STATUS_PATH, query), record=info.record,
        whisper_url=whisper_url,
    )


def _log_call(request: web.Request, call: Any, decided: float, durable: bool,
              retried: bool) -> None:
    metrics = request.app[METRICS]
    metrics.call_decision.labels("twilio").observe(decided)
    outcome = "retried" if retried else ("matched" if call.match else "unmatched")
    metrics.calls.labels("twilio", outcome).inc()
    # One call_attributed per call: a carrier's retry of the same CallSid is logged apart.
    _log.info("call_retried" if retried else "call_attributed", call_id=call.call_id,
              site=call.site, source=call.source, match=call.match,
              likelihood=call.likelihood, candidates=len(call.candidates),
              decision_ms=round(decided * 1000, 3), spooled=durable)


def _int(value: str | None) -> int | None:
    """A duration in seconds, or None for anything else (a carrier's status callback is not
    refused for a field we only record)."""
    if value is None or not validate.digits(value, MAX_DURATION_DIGITS):
        return None
    return int(value)


async def status(request: web.Request) -> web.Response:
    """Dial outcome (`DialCallStatus`...) and call-status callbacks update the call record."""
    form = await verified_form(request)
    call_id = _field(form, "CallSid")
    assert call_id is not None
    update = CallUpdate(
        call_id=call_id, at=time.time(),
        status=_field(form, "CallStatus", required=False),
        dial_status=_field(form, "DialCallStatus", required=False),
        duration=_int(form.get("DialCallDuration") or form.get("CallDuration")),
        recording_url=(form.get("RecordingUrl") or None),
    )
    await request.app[STATE].writer.add_durable([update])
    _log.info("call_status", call_id=call_id, status=update.status, dial=update.dial_status,
              duration=update.duration)
    return _twiml(twilio.empty())


async def whisper(request: web.Request) -> web.Response:
    """The message the business hears before it is connected (announces the source)."""
    await verified_form(request)
    engine = request.app[STATE].engine
    number = request.query.get("number", "")
    try:
        info = engine.lookup(number) if engine is not None else None
    except UnknownNumber:
        info = None
    text = info.whisper if info is not None and info.whisper else "Tracked call"
    return _twiml(twilio.whisper(text))


def routes() -> list[web.RouteDef]:
    return [web.post("/v1/voice/twilio", inbound), web.post(STATUS_PATH, status),
            web.post(WHISPER_PATH, whisper)]
