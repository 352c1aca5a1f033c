"""swap.js in headless Debian chromium against a real gateway (real socket, real Postgres) and a
customer page on another origin: every number format, tel: links, late nodes, opt-outs, the
session events the gateway records, stickiness, fail-safe and consent."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, Route

from gateway.cli import DEMO_CONFIG
from gateway.configfile import read as read_config
from gateway.settings import Settings
from gateway.web import static
from tests.browser.conftest import ARTIFACTS, POOL, Console, Customer, site_config
from tests.browser.pages import FORMATS, UNTOUCHED, expected, page_html
from tests.conftest import Gateway, start_gateway

pytestmark = pytest.mark.browser

READY = "window.dni && window.dni.ready"
RELEASED = "!document.documentElement.classList.contains('dni-pending')"
# What chromium itself logs when a request cannot connect; not the script's doing.
REFUSED = "error: Failed to load resource: net::ERR_CONNECTION_REFUSED"


def base(gw: Gateway) -> str:
    return str(gw.server.make_url("/"))


async def answer(page: Page) -> Any:
    await page.wait_for_function(READY)
    return await page.evaluate("window.dni.ready")


async def texts(page: Page, ids: Any) -> dict[str, str]:
    return {i: await page.locator(f"#{i}").inner_text() for i in ids}


async def event_kinds(db_url: str, session: str, wanted: Counter[str]) -> Counter[str]:
    """The session's events in Postgres, once they include `wanted` (or after 5 s)."""
    conn = await asyncpg.connect(db_url)
    try:
        got: Counter[str] = Counter()
        for _ in range(100):
            rows = await conn.fetch("SELECT kind FROM session_events WHERE session = $1",
                                    session)
            got = Counter(r["kind"] for r in rows)
            if not wanted - got:
                break
            await asyncio.sleep(0.05)
        return got
    finally:
        await conn.close()


async def test_swaps_every_format_and_reports_the_session(
        browser: Browser, acme: Gateway, customer: Customer, db_url: str) -> None:
    customer.pages["home"] = page_html(base(acme))
    context = await browser.new_context(viewport={"width": 720, "height": 900})
    console = Console()
    page = console.watch(await context.new_page())
    held: asyncio.Future[Route] = asyncio.get_running_loop().create_future()
    await page.route("**/v1/swap", lambda r: held.set_result(r))  # noqa: PLW0108 (see Console)
    await page.goto(customer.url("home", "?gclid=ads-click-1"))

    route = await asyncio.wait_for(held, 5)  # the page is up, the swap not yet answered
    assert not await page.locator("#paren").is_visible()  # anti-flicker hides the marked numbers
    assert await texts(page, ["sentence"]) == {"sentence": "Call (800) 555-0100 today, or text "
                                               "800.555.0100 after hours."}
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "swap-before.png", full_page=True)
    await route.continue_()
    await page.unroute("**/v1/swap")
    got = await answer(page)

    assert got["number"] in POOL and got["source"] == "Google Ads" and got["session"]
    want = expected(got["number"])
    assert await texts(page, FORMATS) == want
    assert await page.locator("#paren").is_visible()
    assert await page.evaluate(RELEASED)
    assert await texts(page, ["sentence"]) == {"sentence": (
        f"Call {want['paren']} today, or text {want['dot']} after hours.")}
    assert await page.get_attribute("#tel", "href") == "tel:" + got["number"]
    assert await page.get_attribute("#tel-dash", "href") == "tel:" + want["dash"]
    assert await page.inner_text("#tel-dash") == want["dash"]
    assert await texts(page, UNTOUCHED) == UNTOUCHED
    assert await page.input_value("#textarea") == "(800) 555-0100"
    assert await page.input_value("#input") == "800-555-0100"
    assert await page.evaluate("document.getElementById('inline').text") == \
        'var ownNumber = "800-555-0100";'

    # Late content: the observer swaps what the app adds; dni.swap(root) reaches shadow roots.
    await page.evaluate("""() => {
        const p = document.createElement('p');
        p.id = 'late'; p.textContent = 'New: +1 (800) 555-0100';
        document.body.append(p);
        const a = document.createElement('a');
        a.id = 'late-tel'; a.href = 'tel:18005550100'; a.textContent = 'call';
        document.body.append(a);
        document.getElementById('host').attachShadow({mode: 'open'}).innerHTML =
            '<i id="shadow">800-555-0100</i>';
    }""")
    n = want["digits"]
    late = f"New: +1 ({n[:3]}) {n[3:6]}-{n[6:]}"
    await page.wait_for_function(f"document.getElementById('late').textContent === {late!r}")
    assert await page.get_attribute("#late-tel", "href") == "tel:1" + n
    assert await page.evaluate("document.getElementById('host').shadowRoot.textContent") == \
        "800-555-0100"  # observers do not see into shadow roots...
    assert await page.evaluate("window.dni.swap(document.getElementById('host').shadowRoot)") == 1
    assert await page.evaluate("document.getElementById('host').shadowRoot.textContent") == \
        want["dash"]  # ...the rescan does
    await page.screenshot(path=ARTIFACTS / "swap-after.png", full_page=True)

    # Session events: a history navigation, pings (data-ping="1"), a tel: tap, hiding the tab.
    await page.evaluate("history.pushState({}, '', '/pricing')")
    await page.evaluate("history.replaceState({}, '', '/pricing')")  # same URL: no pageview
    await page.click("#tel")
    session = got["session"]
    kinds = await event_kinds(db_url, session, Counter(["pageview", "ping", "click_to_call"]))
    assert kinds["pageview"] == 1 and kinds["click_to_call"] == 1 and kinds["ping"] >= 1
    await page.evaluate("""() => {  // headless tabs never hide: play the browser's part
        Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    kinds = await event_kinds(db_url, session, Counter(["hidden"]))
    assert kinds["hidden"] == 1
    await asyncio.sleep(1.2)  # longer than the ping interval: a hidden tab stays quiet
    assert (await event_kinds(db_url, session, Counter()))["ping"] == kinds["ping"]
    assert console.problems() == []
    await context.close()


async def test_a_returning_visitor_keeps_the_number_and_the_cookie(
        browser: Browser, acme: Gateway, customer: Customer) -> None:
    customer.pages["home"] = page_html(base(acme))
    context = await browser.new_context()
    console = Console()
    page = console.watch(await context.new_page())
    await page.goto(customer.url("home", "?gclid=ads-click-2"))
    first = await answer(page)
    cookies = {c["name"]: c for c in await context.cookies(customer.origin)}
    assert cookies["dni_v"]["value"] == first["visitor"]
    assert cookies["dni_v"]["expires"] - time.time() == pytest.approx(30 * 86400, abs=120)
    assert await page.evaluate("localStorage.getItem('dni_v')") == first["visitor"]

    await page.reload()
    again = await answer(page)
    assert (again["visitor"], again["number"]) == (first["visitor"], first["number"])
    assert (await texts(page, FORMATS)) == expected(first["number"])

    # Cookie gone (cleared by the browser), localStorage still there: the same visitor.
    await context.clear_cookies()
    await page.goto(customer.url("home"))
    assert (await answer(page))["visitor"] == first["visitor"]
    assert console.problems() == []
    await context.close()


async def test_with_the_gateway_down_the_page_keeps_its_numbers(
        browser: Browser, settings: Settings, customer: Customer) -> None:
    gw = await start_gateway(settings)
    await gw.import_config(site_config(customer.origin))
    customer.pages["home"] = page_html(base(gw))
    context = await browser.new_context()
    first = Console()
    page = first.watch(await context.new_page())
    await page.goto(customer.url("home", "?gclid=ads-click-3"))
    assert (await answer(page))["number"] in POOL  # swap.js is now in the browser's cache
    await gw.client.close()

    # Cached swap.js, gateway unreachable: no swap, anti-flicker released, nothing thrown.
    console = Console()
    page = console.watch(await context.new_page())
    await page.goto(customer.url("home", "?gclid=ads-click-3"))
    assert await answer(page) is None
    assert await page.evaluate(RELEASED)
    assert await texts(page, FORMATS) == FORMATS
    assert await page.get_attribute("#tel", "href") == "tel:+18005550100"
    assert set(console.problems()) <= {REFUSED}

    # A first-time visitor: swap.js itself cannot load; the CSS alone shows the numbers.
    fresh = await browser.new_context()
    console = Console()
    page = console.watch(await fresh.new_page())
    await page.goto(customer.url("home"))
    await page.locator("#paren").wait_for(state="visible", timeout=4000)
    assert await page.evaluate("window.dni") is None
    assert await texts(page, FORMATS) == FORMATS
    assert set(console.problems()) <= {REFUSED}
    await context.close()
    await fresh.close()


async def test_a_slow_gateway_is_cut_off_at_the_budget(
        browser: Browser, customer: Customer) -> None:
    never = asyncio.Event()

    async def stalled_swap(request: web.Request) -> web.Response:
        await asyncio.wait_for(never.wait(), 10)
        return web.json_response({})

    app = web.Application()
    app.router.add_routes(static.routes())
    app.router.add_post("/v1/swap", stalled_swap)
    slow = TestServer(app, host="127.0.0.1", port=0)
    await slow.start_server()
    try:
        customer.pages["home"] = page_html(str(slow.make_url("/")), attrs="")
        context = await browser.new_context()
        console = Console()
        page = console.watch(await context.new_page())
        await page.goto(customer.url("home"))
        await page.wait_for_function(READY)
        await page.evaluate("window.dni.ready.then(() => { window.settledAt = performance.now() })")
        assert await answer(page) is None
        settled = await page.evaluate("window.settledAt")
        assert 1500 <= settled < 3000  # the default 1.5 s budget from when the script ran
        assert await page.evaluate(RELEASED)
        assert await texts(page, FORMATS) == FORMATS
        assert console.problems() == []
        await context.close()
    finally:
        never.set()
        await slow.close()


async def test_consent_gates_cookies_and_swapping(
        browser: Browser, acme: Gateway, customer: Customer) -> None:
    gateway = base(acme)
    customer.pages["home"] = page_html(gateway, attrs='data-consent="required"')
    context = await browser.new_context()
    console = Console()
    page = console.watch(await context.new_page())
    swaps: list[str] = []
    page.on("request", lambda r: swaps.append(r.url) if "/v1/swap" in r.url else None)
    await page.goto(customer.url("home", "?gclid=ads-click-4"))
    await page.wait_for_function(f"({READY}) && {RELEASED}")  # ran, decided, showed the page
    assert swaps == []
    assert await context.cookies() == []
    assert await page.evaluate("localStorage.length") == 0
    assert await texts(page, FORMATS) == FORMATS

    await page.evaluate("window.dni.consent(true)")
    got = await answer(page)
    assert await texts(page, FORMATS) == expected(got["number"])
    assert [c["value"] for c in await context.cookies()] == [got["visitor"]]
    assert len(swaps) == 1

    await page.evaluate("window.dni.consent(false)")  # withdrawn: the visitor id is forgotten
    assert await context.cookies() == []
    assert await page.evaluate("localStorage.length") == 0

    # A consent manager that answers before swap.js has loaded queues its call.
    queued = "<script>(window.dni = window.dni || []).push(['consent', true]);</script>"
    customer.pages["queued"] = page_html(gateway, attrs='data-consent="required"', before=queued)
    await page.goto(customer.url("queued", "?gclid=ads-click-5"))
    got = await answer(page)
    assert got["number"] in POOL
    assert await texts(page, FORMATS) == expected(got["number"])
    assert console.problems() == []
    await context.close()


async def test_the_demo_page_swaps_against_the_demo_site(
        browser: Browser, settings: Settings) -> None:
    gw = await start_gateway(settings)
    try:
        origin = base(gw).rstrip("/")
        demo = read_config(DEMO_CONFIG)
        demo["sites"][0]["allowed_origins"] = [origin]  # `make run` serves it on port 8080
        await gw.import_config(demo)
        context = await browser.new_context()
        console = Console()
        page = console.watch(await context.new_page())
        await page.goto(origin + "/demo?gclid=demo-click")
        got = await answer(page)
        assert got["source"] == "Google Ads"
        assert await page.get_attribute("a.dni-number", "href") == "tel:" + got["number"]
        await page.wait_for_function("document.getElementById('answer').textContent[0] === '{'")
        assert got["number"] in await page.inner_text("#answer")
        assert console.problems() == []
        await context.close()
    finally:
        await gw.client.close()
