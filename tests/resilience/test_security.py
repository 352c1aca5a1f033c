"""Who may do what, checked over real sockets, beyond what tests/web and tests/ui already cover:

- every operation the OpenAPI document marks as secured refuses a missing key, a wrong key, the
  key anywhere but the Authorization header, and the dashboard's cookie, and changes nothing;
- the admin API gives browsers no CORS access from any origin;
- dashboard pages and forms refuse forged, expired and other-key session cookies;
- a SIP flood from one allowlisted trunk address is rate limited while a second allowlisted
  address is still answered (calls included).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import pytest

from gateway.settings import Settings
from gateway.web.keys import STATE
from gateway.web.openapi import document
from gateway.web.ui_auth import SESSION_COOKIE, SESSION_TTL_S, UiAuth
from tests.conftest import ADMIN_KEY, DEMO_CONFIG, Gateway, start_gateway
from tests.sip_e2e.conftest import TERMINATION, UdpPeer, invite, sip_port
from tests.ui.conftest import base, sign_in

WRONG = "wrong-admin-key-0123456789"
# Filled in for the path parameters of secured operations; real ids, so that only the
# credentials can be what refuses.
PATH_VALUES = {"site": "acme", "source": "1", "number": "+14155550101", "call": "CA1"}


def secured_operations() -> list[tuple[str, str]]:
    ops = []
    for path, item in document()["paths"].items():
        for method, op in item.items():
            if method != "parameters" and op.get("security"):
                concrete = path.format(**{k: quote(v) for k, v in PATH_VALUES.items()})
                ops.append((method.upper(), concrete))
    return ops


def credentials() -> list[tuple[str, dict[str, str], str]]:
    """(what, headers, query) that must not authenticate."""
    return [
        ("no credentials", {}, ""),
        ("a wrong key", {"Authorization": f"Bearer {WRONG}"}, ""),
        ("the key as Basic", {"Authorization": f"Basic {ADMIN_KEY}"}, ""),
        ("the key without a scheme", {"Authorization": ADMIN_KEY}, ""),
        ("an empty bearer", {"Authorization": "Bearer "}, ""),
        ("the key with a suffix", {"Authorization": f"Bearer {ADMIN_KEY}x"}, ""),
        ("a prefix of the key", {"Authorization": f"Bearer {ADMIN_KEY[:-1]}"}, ""),
        ("the key in the query", {}, f"?key={ADMIN_KEY}&api_key={ADMIN_KEY}"),
        ("the key in another header", {"X-Api-Key": ADMIN_KEY}, ""),
    ]


async def test_every_secured_operation_refuses_bad_credentials(gateway: Gateway) -> None:
    operations = secured_operations()
    assert len(operations) >= 20  # the whole admin, call log and report API
    c = gateway.client
    for method, path in operations:
        for what, headers, query in credentials():
            resp = await c.request(method, path + query, json={"active": False},
                                   headers=headers)
            body = await resp.json()
            assert resp.status == 401, (method, path, what, body)
            assert body["error"]["code"] == "unauthorized"
            assert ADMIN_KEY not in await resp.text()
    # Nothing was changed by any of them.
    sites = await (await c.get("/v1/sites", headers=gateway.auth)).json()
    assert sites["sites"][0]["sources"][0]["numbers"] == ["+14155550101", "+14155550102"]
    number = await (await c.get("/v1/numbers/+14155550101", headers=gateway.auth)).json()
    assert number["active"] is True


async def test_the_dashboard_cookie_does_not_open_the_api(gateway: Gateway) -> None:
    assert await sign_in(gateway, ADMIN_KEY) == 303
    cookie = next(c.value for c in gateway.client.session.cookie_jar if c.key == SESSION_COOKIE)
    for method, path in (("GET", "/v1/sites"), ("GET", "/v1/calls"),
                         ("DELETE", "/v1/sites/acme")):
        resp = await gateway.client.request(method, path,
                                            headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
        assert resp.status == 401, (method, path)


async def test_the_admin_api_offers_browsers_no_cors(gateway: Gateway) -> None:
    """A page on another origin cannot read admin answers, even one that holds the key (and
    the site's own allowed origin is not an admin origin)."""
    for origin in ("https://evil.test", "https://acme.test", "null"):
        pre = await gateway.client.options("/v1/sites", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert "Access-Control-Allow-Origin" not in pre.headers, origin
        resp = await gateway.client.get("/v1/sites", headers={**gateway.auth, "Origin": origin})
        assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


def _cookies(now: float) -> list[tuple[str, str]]:
    mine = UiAuth(ADMIN_KEY, secure=False)
    other = UiAuth("another-admin-key-0123456789", secure=False)
    old = UiAuth(ADMIN_KEY, secure=False, clock=lambda: now - SESSION_TTL_S - 60)
    good = mine.token(mine.issue())
    expires, nonce, mac = good.split(".")
    return [
        ("signed with another admin key (a rotated key)", other.token(other.issue())),
        ("expired", old.token(old.issue())),
        ("a later expiry than signed", f"{int(expires) + 3600}.{nonce}.{mac}"),
        # Change the nonce's last character to a different one (a same-character "change"
        # would be the genuine cookie and make the test flaky).
        ("another nonce under the same MAC",
         f"{expires}.{nonce[:-1]}{'B' if nonce.endswith('A') else 'A'}.{mac}"),
        ("no MAC", f"{expires}.{nonce}."),
        ("garbage", "x" * 200),
    ]


PAGES = ("/ui/calls", "/ui/calls/CA1", "/ui/reports/accuracy", "/ui/sources")
FORMS = ("/ui/calls/CA1/use", "/ui/signout")


async def test_forged_session_cookies_are_refused(gateway: Gateway) -> None:
    for what, value in _cookies(time.time()):
        headers = {"Cookie": f"{SESSION_COOKIE}={value}"}
        for path in PAGES:
            resp = await gateway.client.get(path, headers=headers, allow_redirects=False)
            assert resp.status == 303, (what, path)
            assert resp.headers["Location"].startswith("/ui/signin?next=")
        for path in FORMS:
            resp = await gateway.client.post(path, data={"csrf": "x", "session": "s"},
                                             headers={**headers, "Origin": base(gateway)},
                                             allow_redirects=False)
            assert (resp.status, resp.headers.get("Location")) == (303, "/ui/signin"), what


async def test_dashboard_pages_cannot_be_framed_or_cached(gateway: Gateway) -> None:
    assert await sign_in(gateway, ADMIN_KEY) == 303
    for path in (*PAGES, "/ui/signin"):
        resp = await gateway.client.get(path, allow_redirects=False)
        assert resp.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path
        assert resp.headers["Cache-Control"] == "no-store", path


# -- SIP: a flood from one trunk address does not starve another --------------------------------

TRUNK_A, TRUNK_B = "127.0.0.2", "127.0.0.3"
SIP_RATE = 20  # requests/s per source (burst the same): small, so the flood is quick to send
FLOOD = 300  # datagrams from TRUNK_A, far over one second's allowance
INTERLEAVE = 30  # one request from TRUNK_B after every this many flood datagrams


@pytest.fixture
async def two_trunks(settings: Settings, loop_errors: list[Any]) -> AsyncIterator[Gateway]:
    gw = await start_gateway(replace(settings, sip_host="127.0.0.1", sip_port=0,
                                     sip_trunks=(f"{TRUNK_A}/32", f"{TRUNK_B}/32"),
                                     sip_termination=TERMINATION, sip_rate_per_source=SIP_RATE))
    await gw.import_config(DEMO_CONFIG)
    yield gw
    await gw.client.close()


def options(peer: UdpPeer, call_id: str) -> bytes:
    return invite("+14155550199", method="OPTIONS", branch=f"z9hG4bK{call_id}", call_id=call_id,
                  local=(peer.local[0], peer.local[1]))


def answered(peer: UdpPeer, seconds: float) -> dict[str, int]:
    """Final status per Call-ID of everything that arrives within `seconds` (blocking)."""
    out: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        r = peer.recv(left)
        if r is None:
            break
        if r.status >= 200:
            out[r.header("call-id") or ""] = r.status
    return out


def flood(a: UdpPeer, b: UdpPeer) -> list[str]:
    """TRUNK_A floods; TRUNK_B sends an OPTIONS every INTERLEAVE datagrams and one INVITE to
    the billboard number in the middle. Returns TRUNK_B's Call-IDs."""
    sent_b = []
    for i in range(FLOOD):
        a.send(options(a, f"flood-{i}"))
        if i % INTERLEAVE == 0:
            sent_b.append(f"b-{i}")
            b.send(options(b, f"b-{i}"))
        if i == FLOOD // 2:
            sent_b.append("b-call")
            b.send(invite("+14155550199", branch="z9hG4bKbcall", call_id="b-call",
                          local=(b.local[0], b.local[1])))
    return sent_b


async def test_a_sip_flood_from_one_trunk_does_not_starve_another(two_trunks: Gateway) -> None:
    port = sip_port(two_trunks)
    a, b = UdpPeer("127.0.0.1", port, TRUNK_A), UdpPeer("127.0.0.1", port, TRUNK_B)
    try:
        started = time.monotonic()
        sent_b = await asyncio.to_thread(flood, a, b)
        elapsed = time.monotonic() - started
        got_a, got_b = await asyncio.gather(asyncio.to_thread(answered, a, 1.0),
                                            asyncio.to_thread(answered, b, 1.0))
        assert set(got_b) == set(sent_b), "the second trunk was starved"
        assert got_b["b-call"] == 302 and {got_b[c] for c in sent_b if c != "b-call"} == {200}
        allowance = SIP_RATE + SIP_RATE * (elapsed + 0.2) + 1  # burst + refill while sending
        assert 1 <= len(got_a) <= allowance, (len(got_a), allowance)
        server = two_trunks.app[STATE].sip
        assert server.counters.rate_limited >= FLOOD - allowance
        metrics = await (await two_trunks.client.get("/metrics")).text()
        assert "dni_sip_rate_limited_total" in metrics
        await asyncio.sleep(1.0)  # the bucket refills: the flooding trunk is served again
        a.send(options(a, "after"))
        assert (await asyncio.to_thread(answered, a, 1.0)).get("after") == 200
    finally:
        a.close()
        b.close()
