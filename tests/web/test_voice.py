"""Voice webhooks end to end: signatures, TwiML, idempotency, fail-open, kill -9, call log API."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import structlog
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from gateway import log
from gateway.carriers.twilio import Secrets, signature_valid
from gateway.settings import Settings
from gateway.web.keys import STATE
from tests import pg
from tests.conftest import ADMIN_KEY, DEMO_CONFIG, Gateway, start_gateway
from tests.web.test_swap import swap, wait_for

TOKEN = "twilio-token-1"
PUBLIC = "http://gateway.test"


def signed(path: str, params: dict[str, str], token: str = TOKEN,
           url_base: str = PUBLIC) -> dict[str, Any]:
    signature = RequestValidator(token).compute_signature(url_base + path, params)
    return {"data": urlencode(params), "headers": {
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}}


def call_params(call_id: str, to: str, caller: str = "+14155559999") -> dict[str, str]:
    return {"CallSid": call_id, "AccountSid": "AC" + "0" * 32, "From": caller, "To": to,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01",
            "FromCity": "SAN FRANCISCO", "StirVerstat": "TN-Validation-Passed-A"}


async def post_call(gw: Gateway, call_id: str, to: str, **kw: Any) -> tuple[int, str]:
    resp = await gw.client.post("/v1/voice/twilio", **signed("/v1/voice/twilio",
                                                             call_params(call_id, to, **kw)))
    return resp.status, await resp.text()


def test_the_published_twilio_vector_verifies() -> None:
    params = MultiDict({"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309",
                        "Digits": "1234", "From": "+14158675309", "To": "+18005551212"})
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    header = {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}
    assert signature_valid(Secrets(("rotated-old", "12345"), ()), url, params, header)
    assert not signature_valid(Secrets(("1234",), ()), url, params, header)
    assert signature_valid(Secrets((), ("12345",)), url, params,
                           {"X-SignalWire-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="})


async def test_pool_call_is_attributed_and_forwarded_with_exact_twiml(
    gateway: Gateway, db_url: str
) -> None:
    v = await swap(gateway)
    status, body = await post_call(gateway, "CA100", v["number"])
    assert status == 200, body
    root = ET.fromstring(body)
    assert root.tag == "Response" and [c.tag for c in root] == ["Dial"]
    dial = root[0]
    assert dial.attrib == {
        "action": "http://gateway.test/v1/voice/twilio/status?site=acme", "method": "POST",
        "answerOnBridge": "true", "callerId": "+14155559999", "timeout": "30"}
    assert [(n.tag, n.text, n.attrib) for n in dial] == [("Number", "+18005550100", {})]
    await wait_for(db_url, "SELECT count(*) FROM calls", 1)
    resp = await gateway.client.get("/v1/calls/CA100", headers=gateway.auth)
    call = await resp.json()
    assert (call["id"], call["source"], call["session"], call["visitor"]) == (
        "CA100", "Google Ads", v["session"], v["visitor"])
    assert 0 < call["likelihood"] <= 1
    assert call["candidates"][0]["session"] == v["session"]
    assert call["landing_page"] == "https://acme.test/?gclid=g1"
    assert call["click_ids"] == {"gclid": "g1"}


async def test_offline_unknown_and_inactive_numbers(gateway: Gateway, db_url: str) -> None:
    status, body = await post_call(gateway, "CA200", "+14155550199")
    assert status == 200 and ET.fromstring(body)[0].tag == "Dial"
    status, body = await post_call(gateway, "CA201", "+14155550000")
    root = ET.fromstring(body)
    assert status == 200 and root[0].tag == "Reject" and root[0].attrib == {"reason": "rejected"}
    resp = await gateway.client.patch("/v1/numbers/+14155550102", json={"active": False},
                                      headers=gateway.auth)
    assert resp.status == 200
    status, body = await post_call(gateway, "CA202", "+14155550102")
    assert ET.fromstring(body)[0].tag == "Reject"
    assert await wait_for(db_url, "SELECT array_agg(id) FROM calls", ["CA200"]) == ["CA200"]
    call = await (await gateway.client.get("/v1/calls/CA200", headers=gateway.auth)).json()
    assert call["source"] == "Billboard I-80" and call["session"] is None


async def test_missing_forged_or_misdirected_signature_is_refused(
    gateway: Gateway, db_url: str
) -> None:
    params = call_params("CA300", "+14155550199")
    c = gateway.client
    resp = await c.post("/v1/voice/twilio", data=urlencode(params),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 403 and "Response" not in await resp.text()
    forged = signed("/v1/voice/twilio", params, token="wrong")
    assert (await c.post("/v1/voice/twilio", **forged)).status == 403
    elsewhere = signed("/v1/voice/twilio", params, url_base="https://other.example")
    assert (await c.post("/v1/voice/twilio", **elsewhere)).status == 403
    tampered = signed("/v1/voice/twilio", params)
    tampered["data"] = tampered["data"].replace("CA300", "CA301")
    assert (await c.post("/v1/voice/twilio", **tampered)).status == 403
    await asyncio.sleep(0.2)
    assert await wait_for(db_url, "SELECT count(*) FROM calls", 0) == 0


async def test_a_retried_webhook_gets_the_same_twiml_and_one_record(
    gateway: Gateway, db_url: str
) -> None:
    v = await swap(gateway)
    first = await post_call(gateway, "CA400", v["number"])
    second = await post_call(gateway, "CA400", v["number"])
    assert first == second
    await asyncio.sleep(0.3)
    assert await wait_for(db_url, "SELECT count(*) FROM calls WHERE id = 'CA400'", 1) == 1
    assert await wait_for(db_url, "SELECT count(*) FROM call_matches WHERE call_id = 'CA400'",
                          1) == 1


async def test_status_callback_updates_the_call(gateway: Gateway, db_url: str) -> None:
    await post_call(gateway, "CA500", "+14155550199")
    cb = {"CallSid": "CA500", "DialCallStatus": "completed", "DialCallDuration": "42",
          "CallStatus": "in-progress", "RecordingUrl": "https://api.twilio.com/rec/RE1"}
    path = "/v1/voice/twilio/status?site=acme"
    resp = await gateway.client.post(path, **signed(path, cb))
    assert resp.status == 200 and ET.fromstring(await resp.text()).tag == "Response"
    assert await wait_for(db_url, "SELECT duration FROM calls WHERE id = 'CA500'", 42) == 42


async def test_override_round_trip(gateway: Gateway, db_url: str) -> None:
    a = await swap(gateway)
    b = await swap(gateway, visitor=None)
    # Put both on one number: b's number is the other pool number; call a's number but use b.
    await post_call(gateway, "CA600", a["number"])
    await wait_for(db_url, "SELECT count(*) FROM calls", 1)
    resp = await gateway.client.post("/v1/calls/CA600/match", json={"session": b["session"]},
                                     headers=gateway.auth)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["session"] == b["session"] and body["previous"] == a["session"]
    assert await wait_for(db_url, "SELECT session FROM calls WHERE id = 'CA600'",
                          b["session"]) == b["session"]
    call = await (await gateway.client.get("/v1/calls/CA600", headers=gateway.auth)).json()
    assert call["matched_by"] == "admin"
    assert [(h["session"], h["previous"], h["actor"]) for h in call["history"]] == [
        (a["session"], None, "auto"), (b["session"], a["session"], "admin")]
    bad = await gateway.client.post("/v1/calls/CA600/match", json={"session": "s_nope"},
                                    headers=gateway.auth)
    assert bad.status == 404
    missing = await gateway.client.post("/v1/calls/CA999/match", json={"session": a["session"]},
                                        headers=gateway.auth)
    assert missing.status == 404


async def test_call_log_filters_and_paginates(gateway: Gateway, db_url: str) -> None:
    for i in range(5):
        await post_call(gateway, f"CA70{i}", "+14155550199")
    await wait_for(db_url, "SELECT count(*) FROM calls", 5)
    c, auth = gateway.client, gateway.auth
    page = await (await c.get("/v1/calls?limit=2&site=acme", headers=auth)).json()
    seen = [x["id"] for x in page["calls"]]
    while page["next"]:
        page = await (await c.get(f"/v1/calls?limit=2&cursor={page['next']}",
                                  headers=auth)).json()
        seen += [x["id"] for x in page["calls"]]
    assert seen == [f"CA70{i}" for i in reversed(range(5))]
    none = await (await c.get("/v1/calls?source=Google%20Ads", headers=auth)).json()
    assert none["calls"] == []
    for bad in ("cursor=zz", "limit=0", "from=yesterday", "min_likelihood=x"):
        resp = await c.get(f"/v1/calls?{bad}", headers=auth)
        assert resp.status == 422, bad
    assert (await c.get("/v1/calls")).status == 401


async def test_call_log_filters_by_source_time_and_likelihood(gateway: Gateway,
                                                               db_url: str) -> None:
    v = await swap(gateway)
    await post_call(gateway, "CA750", "+14155550199")  # offline: no likelihood
    await asyncio.sleep(0.05)
    await post_call(gateway, "CA751", v["number"])  # the pool: matched with a likelihood
    await asyncio.sleep(0.05)
    await post_call(gateway, "CA752", "+14155550199")
    await wait_for(db_url, "SELECT count(*) FROM calls", 3)
    c, auth = gateway.client, gateway.auth

    async def ids(query: str) -> list[str]:
        resp = await c.get(f"/v1/calls?{query}", headers=auth)
        assert resp.status == 200, await resp.text()
        return [x["id"] for x in (await resp.json())["calls"]]

    rows = {x["id"]: x for x in (await (await c.get("/v1/calls", headers=auth)).json())["calls"]}
    assert await ids("source=Google%20Ads") == ["CA751"]
    assert await ids("source=Billboard%20I-80&site=acme") == ["CA752", "CA750"]
    assert await ids("site=other") == []
    assert await ids("min_likelihood=0.01") == ["CA751"]
    assert await ids("max_likelihood=0.01") == []
    middle = rows["CA751"]["at"]
    assert await ids(f"from={middle}") == ["CA752", "CA751"]  # from: inclusive
    assert await ids(f"to={middle}") == ["CA750"]  # to: exclusive
    assert await ids(f"from={middle}&to={rows['CA752']['at']}") == ["CA751"]
    assert await ids("from=2000-01-01&to=2000-01-02T00:00:00Z") == []


async def test_call_is_forwarded_while_postgres_is_down(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.run_in_executor(None, pg.Restartable)
    url = await pg.create_database(server.url)
    settings = Settings(database_url=url, data_dir=tmp_path / "data", admin_key=ADMIN_KEY,
                        public_url=PUBLIC, twilio_auth_tokens=(TOKEN,), flush_interval_s=0.05)
    gw = await start_gateway(settings)
    try:
        await gw.import_config(DEMO_CONFIG)
        v = await swap(gw)
        await asyncio.sleep(0.2)
        await loop.run_in_executor(None, server.stop)
        started = time.perf_counter()
        status, body = await post_call(gw, "CA800", v["number"])
        assert status == 200 and ET.fromstring(body)[0].tag == "Dial"
        assert time.perf_counter() - started < 2.0  # answered without waiting on the db
        assert list((tmp_path / "data" / "spool").glob("*.jsonl"))
        await loop.run_in_executor(None, server.start)
        assert await wait_for(url, "SELECT session FROM calls WHERE id = 'CA800'",
                              v["session"]) == v["session"]
    finally:
        await gw.client.close()
        server.remove()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_kill_9_right_after_answering_loses_no_call(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    data = tmp_path / "data"
    config = tmp_path / "sites.toml"
    config.write_text(Path(__file__).parents[2].joinpath("gateway/demo.toml").read_text())
    env = {**os.environ, "DATABASE_URL": db_url, "DNI_DATA_DIR": str(data),
           "DNI_PORT": str(port), "DNI_TWILIO_AUTH_TOKEN": TOKEN, "DNI_PUBLIC_URL": PUBLIC,
           "DNI_ADMIN_KEY": ADMIN_KEY, "DNI_FLUSH_INTERVAL": "5"}  # slow flush: only the spool
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        req = signed("/v1/voice/twilio", call_params("CA900", "+14155550199"))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/voice/twilio",
                                         data=req["data"].encode(), headers=req["headers"])
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert b"<Dial" in resp.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM calls") == 0  # only the spool had it
    finally:
        await conn.close()
    settings = Settings(database_url=db_url, data_dir=data, admin_key=ADMIN_KEY)
    gw = await start_gateway(settings)  # the next start replays the spool
    try:
        assert await wait_for(db_url, "SELECT count(*) FROM calls WHERE id = 'CA900'", 1) == 1
        assert gw.app[STATE].writer is not None
    finally:
        await gw.client.close()


async def test_recording_whisper_and_ring_timeout_in_the_twiml(
    gateway: Gateway, db_url: str
) -> None:
    config: dict[str, Any] = {**DEMO_CONFIG, "sites": [dict(DEMO_CONFIG["sites"][0])]}
    offline = dict(config["sites"][0]["sources"][1])
    offline |= {"record": True, "whisper": "Call from the billboard", "ring_timeout": 20}
    config["sites"][0]["sources"] = [config["sites"][0]["sources"][0], offline]
    await gateway.import_config(config)
    status, body = await post_call(gateway, "CA700", "+14155550199")
    assert status == 200, body
    dial = ET.fromstring(body)[0]
    whisper_url = "http://gateway.test/v1/voice/twilio/whisper?number=%2B14155550199"
    assert dial.attrib == {
        "action": "http://gateway.test/v1/voice/twilio/status?site=acme", "method": "POST",
        "answerOnBridge": "true", "callerId": "+14155559999", "timeout": "20",
        "record": "record-from-answer-dual"}
    assert [(n.tag, n.text, n.attrib) for n in dial] == [
        ("Number", "+18005550100", {"url": whisper_url, "method": "POST"})]
    # Twilio fetches the whisper from that URL, signed like every webhook.
    path = whisper_url.removeprefix(PUBLIC)
    resp = await gateway.client.post(path, **signed(path, {"CallSid": "CA700-child"}))
    assert resp.status == 200
    root = ET.fromstring(await resp.text())
    assert [(c.tag, c.text) for c in root] == [("Say", "Call from the billboard")]
    unsigned = await gateway.client.post(path, data="CallSid=x", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert unsigned.status == 403


async def test_repeated_form_values_are_signed_too(gateway: Gateway, db_url: str) -> None:
    """Twilio signs every value of a repeated field (sorted): a request carrying one is
    accepted when signed by the library, refused when a value is dropped or changed."""
    pairs = [*call_params("CA710", "+14155550199").items(), ("Tag", "b"), ("Tag", "a")]
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/v1/voice/twilio",
                                                          MultiDict(pairs))
    headers = {"X-Twilio-Signature": signature,
               "Content-Type": "application/x-www-form-urlencoded"}
    c = gateway.client
    assert (await c.post("/v1/voice/twilio", data=urlencode(pairs[:-1]),
                         headers=headers)).status == 403
    assert (await c.post("/v1/voice/twilio", data=urlencode([*pairs[:-1], ("Tag", "c")]),
                         headers=headers)).status == 403
    resp = await c.post("/v1/voice/twilio", data=urlencode(pairs), headers=headers)
    assert resp.status == 200 and ET.fromstring(await resp.text())[0].tag == "Dial"


async def test_each_call_is_logged_once_as_attributed(gateway: Gateway) -> None:
    v = await swap(gateway)
    log.configure("console", "info")  # the suite runs at warning
    try:
        with structlog.testing.capture_logs() as logs:
            await post_call(gateway, "CA720", v["number"])
            await post_call(gateway, "CA720", v["number"])  # the carrier retries
            await post_call(gateway, "CA721", "+14155550000")  # not a tracking number
    finally:
        log.configure("console", "warning")
    events = [e for e in logs if e["event"].startswith("call_")]
    assert [e["event"] for e in events] == ["call_attributed", "call_retried", "call_rejected"]
    first = events[0]
    assert (first["call_id"], first["source"], first["match"], first["candidates"]) == (
        "CA720", "Google Ads", v["session"], 1)
    assert 0 < first["likelihood"] <= 1 and first["decision_ms"] >= 0
    assert events[2]["log_level"] == "warning" and events[2]["reason"] == "unknown number"
