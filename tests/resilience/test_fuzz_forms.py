"""Property-based fuzzing of the dashboard's forms and filters over real HTTP: the sign-in
form, the "use" form, the call log's filters, the report's period and the call page.

Whatever is posted or put in the query: no 500, only the statuses the dashboard documents
(303 on success, 400 unreadable, 403 refused, 404 unknown, 422 bad value), and nobody is
signed in without the admin key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.web.ui_auth import SESSION_COOKIE
from tests.conftest import ADMIN_KEY, Gateway
from tests.resilience.conftest import properties
from tests.ui.conftest import base, csrf_of, sign_in

# Text a browser can put in a form or a query string (no surrogates: not encodable).
FORM_TEXT = st.text(st.characters(codec="utf-8"), max_size=60) | st.sampled_from(
    ["", "\x00", "acme", "Google Ads", "2026-01-01", "9999-12-31", "0001-01-01", "1e400",
     "-1", "high", "W05hTiwgIngiXQ==", "WzFlMzAwLCAieCJd", "/ui/calls", "//evil.test",
     ADMIN_KEY[:-1], "x" * 3000])
FORMS = st.dictionaries(st.sampled_from(["key", "csrf", "next", "session", "junk"]) | FORM_TEXT,
                        FORM_TEXT, max_size=5)
CONTENT_TYPES = st.sampled_from([
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=nope", "multipart/form-data",
    "multipart/form-data; boundary=b", "text/plain", "application/json"])
RAW_BODIES = st.binary(max_size=200) | st.sampled_from([
    b"--b\r\nbad\r\n", b"--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nx\r\n--b--\r\n",
    b"key=%ff%fe&csrf=%00", b"key=" + b"k" * 5000])
PAGE_STATUSES = {200, 303, 400, 404, 422}  # 400: a NUL in the URL (JSON, from the middleware)
FORM_STATUSES = {303, 400, 403, 404, 422}  # 404: an id with "/" matches no route


def encoded(form: dict[str, str]) -> bytes:
    return urlencode(form).encode()


async def post_form(gw: Gateway, path: str, body: bytes, ctype: str) -> tuple[int, str]:
    resp = await gw.client.post(path, data=body, allow_redirects=False,
                                headers={"Origin": base(gw), "Content-Type": ctype})
    return resp.status, await resp.text()


async def check_signin(gw: Gateway, body: bytes, ctype: str) -> None:
    status, text = await post_form(gw, "/ui/signin", body, ctype)
    assert status in {400, 403}, (status, text[:300])  # never 303: no valid token, no key
    assert SESSION_COOKIE not in {c.key for c in gw.client.session.cookie_jar}


SIGNIN_ARGS = {"body": FORMS.map(encoded) | RAW_BODIES, "ctype": CONTENT_TYPES}


@properties(60)
@given(**SIGNIN_ARGS)
async def test_sign_in_form_takes_any_body(gateway: Gateway, body: bytes, ctype: str) -> None:
    await check_signin(gateway, body, ctype)


@pytest.mark.resilience
@properties(2000)
@given(**SIGNIN_ARGS)
async def test_sign_in_form_takes_any_body_long(gateway: Gateway, body: bytes,
                                                ctype: str) -> None:
    await check_signin(gateway, body, ctype)


async def signed_in_token(gw: Gateway) -> str:
    """Sign the client in (once per gateway) and return the session's CSRF token."""
    if SESSION_COOKIE not in {c.key for c in gw.client.session.cookie_jar}:
        assert await sign_in(gw, ADMIN_KEY) == 303
    return csrf_of(await (await gw.client.get("/ui/calls")).text())


async def check_use(gw: Gateway, call: str, form: dict[str, str], with_token: bool,
                    ctype: str) -> None:
    token = await signed_in_token(gw)
    body = encoded({**form, "csrf": token} if with_token else form)
    status, text = await post_form(gw, f"/ui/calls/{quote(call, safe='')}/use", body, ctype)
    assert status in FORM_STATUSES, (status, text[:300])


# "." and ".." are dot-segments: the client resolves them away (POST /ui/calls/./use is
# POST /ui/calls/use, a page's URL, rightly 405), so they never reach the form as a call id.
USE_ARGS = {"call": FORM_TEXT.filter(lambda t: t not in ("", ".", "..")), "form": FORMS,
            "with_token": st.booleans(), "ctype": CONTENT_TYPES}


@properties(60)
@given(**USE_ARGS)
async def test_use_form_takes_any_body(gateway: Gateway, call: str, form: dict[str, str],
                                       with_token: bool, ctype: str) -> None:
    await check_use(gateway, call, form, with_token, ctype)


@pytest.mark.resilience
@properties(2000)
@given(**USE_ARGS)
async def test_use_form_takes_any_body_long(gateway: Gateway, call: str, form: dict[str, str],
                                            with_token: bool, ctype: str) -> None:
    await check_use(gateway, call, form, with_token, ctype)


async def check_page(gw: Gateway, path: str, query: dict[str, str]) -> None:
    await signed_in_token(gw)
    url = path + ("?" + urlencode(query) if query else "")
    resp = await gw.client.get(url, allow_redirects=False)
    text = await resp.text()
    assert resp.status in PAGE_STATUSES, (url, resp.status, text[-400:])
    assert "Traceback" not in text


CALL_LOG = st.fixed_dictionaries({}, optional={k: FORM_TEXT for k in (
    "site", "source", "from", "to", "confidence", "cursor")})
REPORT = st.fixed_dictionaries({}, optional={k: FORM_TEXT for k in ("site", "from", "to")})
PAGE_ARGS = {"page": st.one_of(
    st.tuples(st.just("/ui/calls"), CALL_LOG),
    st.tuples(st.just("/ui/reports/accuracy"), REPORT),
    st.tuples(FORM_TEXT.filter(bool).map(lambda c: f"/ui/calls/{quote(c, safe='')}"),
              st.just({})))}


@properties(80)
@given(**PAGE_ARGS)
async def test_pages_take_any_query(gateway: Gateway, page: tuple[str, dict[str, str]]) -> None:
    await check_page(gateway, *page)


@pytest.mark.resilience
@properties(3000)
@given(**PAGE_ARGS)
async def test_pages_take_any_query_long(gateway: Gateway,
                                         page: tuple[str, dict[str, Any]]) -> None:
    await check_page(gateway, *page)


@pytest.mark.parametrize(("path", "status"), [
    ("/ui/calls?from=0001-01-01&to=9999-12-31", 422),
    ("/ui/calls?cursor=W05hTiwgIngiXQ==", 422),  # [NaN, "x"]: not a cursor the API gave
    ("/ui/reports/accuracy?from=2026-01-01&to=9999-12-31", 422),  # year 10000 after "to"
    ("/ui/reports/accuracy?from=1970-01-01&to=2026-01-01", 422),  # longer than the API allows
    ("/ui/calls/%00", 400), ("/ui/calls?site=%00", 400),
])
async def test_found_by_fuzzing(gateway: Gateway, path: str, status: int) -> None:
    """Inputs that made the dashboard answer 500 before they were refused."""
    await signed_in_token(gateway)
    resp = await gateway.client.get(path, allow_redirects=False)
    assert resp.status == status, await resp.text()


@pytest.mark.parametrize(("ctype", "body"), [
    ("multipart/form-data", b"x"),  # no boundary
    ("multipart/form-data; boundary=b", b"--b\r\nbad header\r\n\r\n"),
    ("application/x-www-form-urlencoded; charset=nope", b"key=x"),
])
async def test_unreadable_forms_are_400(gateway: Gateway, ctype: str, body: bytes) -> None:
    status, text = await post_form(gateway, "/ui/signin", body, ctype)
    assert status == 400 and "could not be read" in text
    token = await signed_in_token(gateway)
    assert token
    status, text = await post_form(gateway, "/ui/calls/CA1/use", body, ctype)
    assert status == 400 and "could not be read" in text
