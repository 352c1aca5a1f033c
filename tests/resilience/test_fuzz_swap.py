"""Property-based fuzzing of the website API through the real HTTP stack, and of the engine's
visit with arbitrary text: no crash, only documented errors, nothing that poisons the
write-behind writer, bounded time for huge inputs."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.engine import Engine, EngineError, InvalidInput
from tests.conftest import DEMO_CONFIG, Gateway
from tests.resilience.conftest import exchange, properties, settle_writer, status_of

SITE_NUMBERS = {"+14155550101", "+14155550102", "+18005550100"}  # pool and the site's own
SWAP_STATUSES = {200, 400, 403, 404, 408, 413, 415, 422}  # as the OpenAPI document lists
EVENT_STATUSES = {204, 400, 404, 408, 413, 415, 422}
SETTLE_S = 1.0  # the writer (50 ms period in tests) has this long to empty its queue
VISIT_BUDGET_S = 0.1  # one engine.visit, any input: far above its ~10 us, far below a stall

# Any code point, surrogates and NUL included (hypothesis leaves surrogates out by default).
ANY_CHAR = st.characters(codec=None, exclude_categories=())
HOSTILE = st.one_of(
    st.text(ANY_CHAR, max_size=64),
    st.sampled_from(["", "\x00", "\ud800", "acme", "https://acme.test/?gclid=g1",
                     "https://www.google.com/", "v_AAAAAAAAAAAAAAAAAAAAAA", "%00", "\\u0000",
                     "https://acme.test/?" + "&".join(["gclid="] * 500), "x" * 5000]),
)
JSON_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), HOSTILE,
                       st.lists(HOSTILE, max_size=3))
# Landings that start a session (a gclid), so that what they carry is stored.
TRACKED_URL = st.builds("https://acme.test/{}?gclid=g{}&utm_source={}".format, HOSTILE, HOSTILE,
                        HOSTILE)
# The demo site and a tracked landing: the hostile values reach the engine and the writer.
SWAP_FIELDS = st.fixed_dictionaries(
    {"site": st.just("acme"), "url": TRACKED_URL},
    optional={"referrer": st.none() | HOSTILE, "visitor": st.none() | HOSTILE,
              "extra": JSON_VALUE})
SWAP_DOC = st.one_of(
    st.fixed_dictionaries({"site": HOSTILE, "url": TRACKED_URL | HOSTILE},
                          optional={"referrer": JSON_VALUE, "visitor": JSON_VALUE}),
    st.dictionaries(HOSTILE, JSON_VALUE, max_size=4), JSON_VALUE)
JSON_TYPES = st.sampled_from(["application/json", "text/plain", ""])
CONTENT_TYPES = JSON_TYPES | st.sampled_from(["text/plain; charset=latin-1", "multipart/form-data",
                                              "application/x-www-form-urlencoded",
                                              "application/json; charset=utf-16"])
# What an aiohttp client may put in a header (no CR/LF); raw bytes are sent by socket below.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    exclude_characters="\x7f"), max_size=300)
BODIES = st.one_of(SWAP_DOC.map(lambda d: json.dumps(d).encode()), st.binary(max_size=300))


async def settled(gw: Gateway) -> None:
    """The writer flushed everything queued so far into Postgres and is still healthy: a
    record Postgres refuses would stay queued and block every later one."""
    writer = await settle_writer(gw, SETTLE_S)
    assert writer.depth == 0 and writer.healthy, "a stored record was refused by Postgres"


async def check_swap(gw: Gateway, body: bytes, ctype: str, agent: str, origin: str | None) -> None:
    headers = {"Content-Type": ctype, "User-Agent": agent} | ({"Origin": origin} if origin
                                                                else {})
    resp = await gw.client.post("/v1/swap", data=body, headers=headers)
    doc = await resp.json(content_type=None)
    assert resp.status in SWAP_STATUSES, (resp.status, doc)
    if resp.status == 200:
        assert doc["number"] in SITE_NUMBERS
        assert doc["session"] is None or doc["source"] == "Google Ads"
    else:
        assert set(doc) == {"error"} and {"code", "message"} <= set(doc["error"])
    await settled(gw)


ORIGINS = st.none() | st.sampled_from(["https://acme.test", "https://evil.test"])
# Well-formed requests whose field values are hostile: they reach the engine and the writer.
FIELD_ARGS = {"body": SWAP_FIELDS.map(lambda d: json.dumps(d).encode()), "ctype": JSON_TYPES,
              "agent": st.builds("Mozilla/5.0 {}".format, HEADER_TEXT),
              "origin": st.sampled_from([None, "https://acme.test"])}
# Anything at all as the body, under any content type.
BODY_ARGS = {"body": BODIES, "ctype": CONTENT_TYPES, "agent": HEADER_TEXT, "origin": ORIGINS}


@properties(60, shrink=False)
@given(**FIELD_ARGS)
async def test_swap_fields_through_http(open_gateway: Gateway, body: bytes, ctype: str, agent: str,
                                        origin: str | None) -> None:
    await check_swap(open_gateway, body, ctype, agent, origin)


@properties(40, shrink=False)
@given(**BODY_ARGS)
async def test_swap_bodies_through_http(open_gateway: Gateway, body: bytes, ctype: str, agent: str,
                                        origin: str | None) -> None:
    await check_swap(open_gateway, body, ctype, agent, origin)


@pytest.mark.resilience
@properties(2000, shrink=False)
@given(**FIELD_ARGS)
async def test_swap_fields_through_http_long(open_gateway: Gateway, body: bytes, ctype: str,
                                             agent: str, origin: str | None) -> None:
    await check_swap(open_gateway, body, ctype, agent, origin)


@pytest.mark.resilience
@properties(2000, shrink=False)
@given(**BODY_ARGS)
async def test_swap_bodies_through_http_long(open_gateway: Gateway, body: bytes, ctype: str,
                                             agent: str, origin: str | None) -> None:
    await check_swap(open_gateway, body, ctype, agent, origin)


async def test_text_postgres_cannot_store_is_refused_or_cleaned(gateway: Gateway,
                                                                db_url: str) -> None:
    """NUL and unpaired surrogates in JSON fields get a 422 naming the field; bytes that are
    not UTF-8 (or NUL) in the User-Agent header are replaced, and the visit is stored."""
    for field, value in (("url", "https://acme.test/?gclid=a\x00b"), ("referrer", "\ud800"),
                         ("url", "https://acme.test/?gclid=x&utm_source=\udcff"),
                         ("url", "https://acme.test/?gclid=x&utm_source=%00"),
                         ("visitor", "v\x00")):
        body = {"site": "acme", "url": "https://acme.test/?gclid=ok", field: value}
        resp = await gateway.client.post("/v1/swap", data=json.dumps(body))
        assert resp.status == 422 and (await resp.json())["error"]["field"] == field
    payload = json.dumps({"site": "acme", "url": "https://acme.test/?gclid=ua"}).encode()
    raw = await exchange(gateway, [
        b"POST /v1/swap HTTP/1.1\r\nHost: gw\r\nUser-Agent: Mozilla/5.0 \xff\xfe\x80 x\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload])
    assert status_of(raw) == 200, raw[:200]
    await settled(gateway)
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        agents = await conn.fetch("SELECT user_agent FROM sessions")
    finally:
        await conn.close()
    assert [r["user_agent"] for r in agents] == ["Mozilla/5.0 ??? x"]


async def check_event(gw: Gateway, session: str, body: bytes) -> None:
    # A lone surrogate goes out as the invalid UTF-8 it stands for (surrogatepass), percent-
    # encoded: hostile bytes in the path, not a client-side encoding error.
    path = quote(session, safe="", errors="surrogatepass")
    resp = await gw.client.post(f"/v1/sessions/{path}/events", data=body,
                                headers={"Content-Type": "application/json"})
    text = await resp.text()
    assert resp.status in EVENT_STATUSES, (resp.status, text)
    if resp.status != 204:
        assert "error" in json.loads(text)
    await settled(gw)


EVENT_ARGS = {"session": st.text(st.characters(exclude_characters="/"), min_size=1, max_size=80)
              | st.sampled_from(["%00", "s_" + "A" * 22, "x" * 65]),
              "body": st.one_of(st.fixed_dictionaries({"kind": st.sampled_from(
                  ["pageview", "ping", "click_to_call", "hidden"]) | HOSTILE}), JSON_VALUE)
              .map(lambda d: json.dumps(d).encode())}


@properties(40, shrink=False)
@given(**EVENT_ARGS)
async def test_event_bodies_through_http(open_gateway: Gateway, session: str, body: bytes) -> None:
    await check_event(open_gateway, session, body)


@pytest.mark.resilience
@properties(1000, shrink=False)
@given(**EVENT_ARGS)
async def test_event_bodies_through_http_long(open_gateway: Gateway, session: str,
                                              body: bytes) -> None:
    await check_event(open_gateway, session, body)


# -- the engine's visit, directly ------------------------------------------------------------

ENGINE = Engine.from_config(DEMO_CONFIG, seed=11)
LONG_TEXT = st.text(ANY_CHAR, max_size=5000)
VISIT_ARGS = {"url": HOSTILE | LONG_TEXT, "referrer": st.none() | HOSTILE | LONG_TEXT,
              "agent": st.none() | HOSTILE, "visitor": st.none() | HOSTILE,
              "dt": st.floats(0, 3600)}
_clock = [1_800_000_000.0]


def check_visit(url: Any, referrer: Any, agent: Any, visitor: Any, dt: float) -> None:
    _clock[0] += dt
    started = time.perf_counter()
    failed: InvalidInput | None = None
    try:
        v = ENGINE.visit(site="acme", url=url, referrer=referrer, user_agent=agent,
                         visitor=visitor, at=_clock[0])
    except InvalidInput as exc:
        failed = exc
    if failed is not None:
        assert failed.field in {"url", "referrer", "user_agent", "visitor"}
    else:
        assert v.number in SITE_NUMBERS and v.visitor
        assert (v.session is None) == (v.source is None)
    assert time.perf_counter() - started < VISIT_BUDGET_S
    ENGINE.drain()


@properties(300)
@given(**VISIT_ARGS)
def test_engine_visit_takes_any_text(url: Any, referrer: Any, agent: Any, visitor: Any,
                                     dt: float) -> None:
    check_visit(url, referrer, agent, visitor, dt)


@pytest.mark.resilience
@properties(20_000)
@given(**VISIT_ARGS)
def test_engine_visit_takes_any_text_long(url: Any, referrer: Any, agent: Any, visitor: Any,
                                          dt: float) -> None:
    check_visit(url, referrer, agent, visitor, dt)


@pytest.mark.parametrize("field", ["url", "referrer", "user_agent", "visitor"])
def test_engine_refuses_huge_text_quickly(field: str) -> None:
    args: dict[str, Any] = {"site": "acme", "url": "https://acme.test/?gclid=h",
                            "at": 1_900_000_000.0, field: "x" * 10_000_000}
    started = time.perf_counter()
    with pytest.raises(EngineError) as caught:
        ENGINE.visit(**args)
    assert caught.value.field == field
    assert time.perf_counter() - started < VISIT_BUDGET_S
