"""Voice webhooks against bodies and fields a carrier never sends: always a 4xx naming the
problem (never a 500), and never a record Postgres cannot store."""

from __future__ import annotations

import pytest

from gateway.web import voice
from tests.conftest import Gateway
from tests.web.test_voice import call_params, signed

STATUS = "/v1/voice/twilio/status?site=acme"
PART = b'--b\r\nContent-Disposition: form-data; name="CallSid"\r\n'


@pytest.mark.parametrize(("ctype", "body", "status", "field", "says"), [
    ("application/x-www-form-urlencoded; charset=nope", b"CallSid=x", 415, "Content-Type",
     "unsupported charset"),
    ("application/x-www-form-urlencoded", b"CallSid=\xff", 400, "body", "malformed form body"),
    ("multipart/form-data", b"x", 400, "body", "boundary"),
    ("multipart/form-data; boundary=b", b"--b\r\nbad header\r\n\r\n", 400, "body",
     "malformed multipart body"),
    ("multipart/form-data; boundary=b",
     PART + b"Content-Type: text/plain; charset=nope\r\n\r\nx\r\n--b--\r\n", 415,
     "Content-Type", "unsupported charset"),
    ("multipart/form-data; boundary=b",
     PART + b"Content-Transfer-Encoding: rot13\r\n\r\nx\r\n--b--\r\n", 400, "body",
     "transfer encoding"),
])
@pytest.mark.parametrize("path", ["/v1/voice/twilio", STATUS, "/v1/voice/twilio/whisper"])
async def test_unreadable_bodies_are_a_4xx_naming_the_problem(
        gateway: Gateway, path: str, ctype: str, body: bytes, status: int, field: str,
        says: str) -> None:
    resp = await gateway.client.post(path, data=body, headers={"Content-Type": ctype})
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["field"] == field and says in error["message"]


@pytest.mark.parametrize("name", ["CallSid", "To", "From", "Direction"])
async def test_a_nul_in_any_signed_field_is_refused_naming_it(gateway: Gateway,
                                                              name: str) -> None:
    params = call_params("CA1", "+14155550101") | {name: "x\x00y"}
    resp = await gateway.client.post("/v1/voice/twilio", **signed("/v1/voice/twilio", params))
    assert resp.status == 422
    assert (await resp.json())["error"]["field"] == name


async def test_a_nul_in_a_status_callback_is_refused(gateway: Gateway) -> None:
    resp = await gateway.client.post(STATUS, **signed(STATUS, {
        "CallSid": "CA1", "RecordingUrl": "https://r.test/\x00"}))
    assert resp.status == 422
    assert (await resp.json())["error"]["field"] == "RecordingUrl"


async def test_an_unsigned_body_is_still_a_403(gateway: Gateway) -> None:
    resp = await gateway.client.post(STATUS, data="CallSid=CA1&CallStatus=completed",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 403
    # The signature is checked before anything else about the fields: a NUL tells an
    # unsigned sender nothing more than 403.
    resp = await gateway.client.post("/v1/voice/twilio", data="CallSid=CA1%00&To=x",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 403


@pytest.mark.parametrize(("raw", "seconds"), [
    ("42", 42), ("0", 0), ("999999999", 999_999_999), (None, None), ("", None),
    ("²", None), ("٣", None), ("-1", None), ("4.5", None), ("1234567890", None), (" 1", None),
])
def test_durations(raw: str | None, seconds: int | None) -> None:
    assert voice._int(raw) == seconds
