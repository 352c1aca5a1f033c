"""Dashboard sign-in, session cookie and CSRF over real HTTP (no browser needed)."""

from __future__ import annotations

import asyncio
from http.cookies import SimpleCookie
from urllib.parse import quote

import asyncpg
import pytest
from aiohttp import web

from gateway.web import ui
from gateway.web.ui_auth import PRESIGN_COOKIE, SESSION_COOKIE, SESSION_TTL_S, UiAuth
from tests.conftest import ADMIN_KEY, Gateway
from tests.ui.conftest import Seeded, base, csrf_of, sign_in
from tests.web.test_swap import wait_for

PAGES = ("/ui/calls", "/ui/calls/CAui0001", "/ui/reports/accuracy", "/ui/sources")
EVIL = "https://evil.test"


async def match_of(db_url: str, call_id: str) -> str | None:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchval("SELECT session FROM calls WHERE id = $1", call_id)
    finally:
        await conn.close()


def session_cookie(resp: object) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):  # type: ignore[attr-defined]
        jar.load(header)
    return jar


async def test_unauthenticated_pages_redirect_to_sign_in(gateway: Gateway) -> None:
    for path in (*PAGES, "/ui/calls?site=acme&confidence=high"):
        resp = await gateway.client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"] == f"/ui/signin?next={quote(path, safe='')}"
    assert (await gateway.client.get("/ui", allow_redirects=False)).headers[
        "Location"] == "/ui/calls"
    resp = await gateway.client.post("/ui/calls/CAui0001/use", data={"session": "s_x"},
                                     headers={"Origin": base(gateway)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/signin"


async def test_wrong_key_is_refused_and_the_right_one_signs_in(gateway: Gateway) -> None:
    assert await sign_in(gateway, "not-the-admin-key-at-all") == 403
    assert SESSION_COOKIE not in {c.key for c in gateway.client.session.cookie_jar}
    form = await gateway.client.get("/ui/signin?next=/ui/sources")
    resp = await gateway.client.post(
        "/ui/signin", data={"key": ADMIN_KEY, "csrf": csrf_of(await form.text()),
                            "next": "/ui/sources"},
        headers={"Origin": base(gateway)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/sources"
    cookie = session_cookie(resp)[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ui"
    assert int(cookie["max-age"]) == SESSION_TTL_S and not cookie["secure"]  # http test server
    assert (await gateway.client.get("/ui/sources", allow_redirects=False)).status == 200


async def test_sign_in_form_needs_its_token_and_our_origin(gateway: Gateway) -> None:
    form = await (await gateway.client.get("/ui/signin")).text()
    data = {"key": ADMIN_KEY, "csrf": csrf_of(form)}
    foreign = await gateway.client.post("/ui/signin", data=data, headers={"Origin": EVIL},
                                        allow_redirects=False)
    tokenless = await gateway.client.post("/ui/signin", data={"key": ADMIN_KEY},
                                          headers={"Origin": base(gateway)},
                                          allow_redirects=False)
    assert (foreign.status, tokenless.status) == (403, 403)
    assert SESSION_COOKIE not in {c.key for c in gateway.client.session.cookie_jar}


async def test_cross_site_posts_are_refused(gateway: Gateway, seeded: Seeded,
                                            db_url: str) -> None:
    assert await sign_in(gateway, ADMIN_KEY) == 303
    page = await (await gateway.client.get(f"/ui/calls/{seeded.pool_call}")).text()
    token = csrf_of(page)
    other = next(s for s in seeded.sessions if f'value="{s}"' in page)
    path = f"/ui/calls/{seeded.pool_call}/use"
    attempts = [
        ({"Origin": EVIL}, token),                      # another site, even with a token
        ({"Origin": "null"}, token),                    # sandboxed or privacy-stripped origin
        ({"Referer": f"{EVIL}/page"}, token),           # no Origin, foreign Referer
        ({}, token),                                    # neither: cannot tell, refuse
        ({"Origin": base(gateway)}, None),              # our origin but no token
        ({"Origin": base(gateway)}, "0" * 64),          # our origin, wrong token
    ]
    for headers, csrf in attempts:
        data = {"session": other} | ({"csrf": csrf} if csrf else {})
        resp = await gateway.client.post(path, data=data, headers=headers,
                                         allow_redirects=False)
        assert resp.status == 403, headers
        assert "text/html" in resp.headers["Content-Type"]
        assert "Content-Security-Policy" in resp.headers
    await asyncio.sleep(0.2)  # four write-behind periods: a change would have landed
    assert await match_of(db_url, seeded.pool_call) != other
    ok = await gateway.client.post(path, data={"session": other, "csrf": token},
                                   headers={"Referer": f"{base(gateway)}/ui/calls"},
                                   allow_redirects=False)
    assert ok.status == 303
    assert await wait_for(db_url, "SELECT session FROM calls WHERE id = $1", other,
                          seeded.pool_call) == other


async def test_sign_out_ends_the_session_for_good(gateway: Gateway) -> None:
    assert await sign_in(gateway, ADMIN_KEY) == 303
    jar = gateway.client.session.cookie_jar
    old = next(c.value for c in jar if c.key == SESSION_COOKIE)
    page = await (await gateway.client.get("/ui/calls")).text()
    resp = await gateway.client.post("/ui/signout", data={"csrf": csrf_of(page)},
                                     headers={"Origin": base(gateway)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/signin"
    assert SESSION_COOKIE not in {c.key for c in jar}
    replay = await gateway.client.get("/ui/calls", allow_redirects=False,
                                      headers={"Cookie": f"{SESSION_COOKIE}={old}"})
    assert replay.status == 303  # the old cookie value no longer works


def test_session_tokens_are_signed_and_expire() -> None:
    now = [1_000_000.0]
    auth = UiAuth("k" * 20, secure=False, clock=lambda: now[0])
    token = auth.token(auth.issue())
    assert auth.verify(token) is not None
    expires, nonce, mac = token.split(".")
    forged = [f"{int(expires) + 999}.{nonce}.{mac}", f"{expires}.{nonce}x.{mac}",
              f"{expires}.{nonce}.{'0' * len(mac)}", "", "a.b", token + ".x", "x" * 5000]
    assert [auth.verify(t) for t in forged] == [None] * len(forged)
    assert UiAuth("another-admin-key!!", secure=False).verify(token) is None
    now[0] += SESSION_TTL_S + 1
    assert auth.verify(token) is None
    session = auth.issue()
    assert auth.csrf_ok(session.nonce, auth.csrf(session.nonce))
    assert not auth.csrf_ok(session.nonce, auth.csrf("other"))
    assert not auth.csrf_ok(None, auth.csrf(session.nonce))


def test_cookies_are_secure_behind_https() -> None:
    auth = UiAuth("k" * 20, secure=True)
    resp = web.Response()
    auth.set_session(resp, auth.issue())
    auth.set_presign(resp, "n")
    for name in (SESSION_COOKIE, PRESIGN_COOKIE):
        cookie = resp.cookies[name]
        assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"


@pytest.mark.parametrize(("raw", "expected"), [
    ("/ui/sources", "/ui/sources"), ("/ui/calls?site=a", "/ui/calls?site=a"), ("/ui", "/ui"),
    ("https://evil.test/ui/calls", "/ui/calls"), ("//evil.test/ui", "/ui/calls"),
    ("/\\evil.test", "/ui/calls"), ("/v1/calls", "/ui/calls"), ("/uix", "/ui/calls"),
    ("", "/ui/calls"), (None, "/ui/calls"),
])
def test_sign_in_only_returns_to_dashboard_pages(raw: str | None, expected: str) -> None:
    assert ui.safe_next(raw) == expected
