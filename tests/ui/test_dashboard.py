"""The dashboard in headless Debian chromium against a real gateway (real socket, real Postgres)
with calls made through the signed voice webhook: sign-in, the call log, a call's candidates,
the "use" override persisted through the write-behind writer, the accuracy report and the
sources page, at a laptop and a phone width, with no console errors and screenshots saved."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.browser.conftest import ARTIFACTS, Console
from tests.conftest import ADMIN_KEY, Gateway
from tests.ui.conftest import Seeded

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
WHO = "admin (dashboard)"
PERSIST_WAIT_S = 5.0  # the write-behind period is 0.05 s in tests: this is a hundred of them


def url(gw: Gateway, path: str) -> str:
    return str(gw.server.make_url(path))


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / f"ui-{name}.png", full_page=True)


async def open_page(browser: Browser, viewport: dict[str, int],
                    console: Console) -> Page:
    context = await browser.new_context(viewport=viewport, is_mobile=viewport == PHONE)
    return console.watch(await context.new_page())


async def sign_in(page: Page, gw: Gateway, key: str) -> None:
    """Type the key and press Enter, as a keyboard user would."""
    await page.goto(url(gw, "/ui/signin"))
    await page.get_by_label("Admin API key").fill(key)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/ui/calls")


async def fits_width(page: Page) -> bool:
    return await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def candidate_order(page: Page) -> list[str]:
    return await page.locator("li.candidate").evaluate_all(
        "els => els.map(e => e.dataset.session)")


async def attached(page: Page) -> str | None:
    return await page.locator("li.candidate.attached").get_attribute("data-session")


async def api_call(gw: Gateway, call_id: str) -> Any:
    return await (await gw.client.get(f"/v1/calls/{call_id}", headers=gw.auth)).json()


async def test_marketer_flow_on_a_laptop(browser: Browser, gateway: Gateway,
                                         seeded: Seeded) -> None:
    console = Console()
    page = await open_page(browser, LAPTOP, console)

    await page.goto(url(gateway, "/ui/calls?source=Google+Ads"))
    assert page.url.endswith("/ui/signin?next=%2Fui%2Fcalls%3Fsource%3DGoogle%2BAds")
    await shot(page, "signin-laptop")
    await page.get_by_label("Admin API key").fill("wrong-key-wrong-key")
    await page.get_by_role("button", name="Sign in").click()
    assert await page.get_by_role("alert").inner_text() == "That key is not right."
    # The refusal's status is all chromium has to say about it; nothing else may appear.
    assert console.problems() == [
        "error: Failed to load resource: the server responded with a status of 403 (Forbidden)"]
    console.messages.clear()

    await page.get_by_label("Admin API key").fill(ADMIN_KEY)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/ui/calls?source=Google+Ads")  # back where they were going
    await page.get_by_role("link", name="Clear").click()
    rows = page.locator("table.calls tbody tr")
    assert await rows.count() == 2
    assert "2:05 completed" in await rows.nth(0).inner_text()
    await shot(page, "calls-laptop")

    await rows.nth(1).get_by_role("link").click()
    await page.wait_for_url(f"**/ui/calls/{seeded.pool_call}")
    api = await api_call(gateway, seeded.pool_call)
    by_likelihood = [c["session"] for c in api["candidates"]]  # the engine's order, best first
    assert await candidate_order(page) == by_likelihood
    shown = [int(t.rstrip("%")) for t in
             await page.locator("li.candidate .lk-num").all_inner_texts()]
    assert shown == sorted(shown, reverse=True) and len(shown) == 2  # one session per visitor
    assert shown[0] > shown[1]  # the click to call decides it
    assert await attached(page) == api["session"] == by_likelihood[0]
    await shot(page, "call-laptop")
    await page.set_viewport_size({"width": 1200, "height": 1000})
    await page.screenshot(path=ARTIFACTS / "ui-call-laptop-top.png")  # the README's picture
    await page.set_viewport_size(LAPTOP)

    chosen = by_likelihood[1]
    use = page.locator(f"li.candidate[data-session='{chosen}']").get_by_role("button")
    await use.focus()
    await page.keyboard.press("Enter")  # the override, from the keyboard
    await page.wait_for_url(f"**/ui/calls/{seeded.pool_call}?used=*")
    await expect_persisted(page, chosen)
    await shot(page, "call-after-use-laptop")

    await page.get_by_role("link", name="Accuracy").click()
    await page.wait_for_url("**/ui/reports/accuracy")
    verdicts = await page.locator(".verdict strong").all_inner_texts()
    assert verdicts and set(verdicts) <= {"more numbers", "fewer numbers", "just right"}
    assert await page.locator("svg.chart").count() >= 2
    await shot(page, "report-laptop")

    await page.get_by_role("link", name="Sources & numbers").click()
    await page.wait_for_url("**/ui/sources")
    assert "2 reserved" in await page.locator(".pool-state").first.inner_text()
    await shot(page, "sources-laptop")

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/ui/signin")
    await page.goto(url(gateway, "/ui/calls"))
    assert "/ui/signin" in page.url
    assert console.problems() == []
    await page.context.close()


async def expect_persisted(page: Page, chosen: str) -> None:
    """Reload until Postgres shows the override (the write-behind flush), then once more."""
    deadline = asyncio.get_running_loop().time() + PERSIST_WAIT_S
    while await attached(page) != chosen:
        assert asyncio.get_running_loop().time() < deadline, "the override never showed"
        await asyncio.sleep(0.1)
        await page.reload()
    await page.reload()
    assert await attached(page) == chosen
    history = await page.locator("table.history tbody tr").all_inner_texts()
    assert len(history) == 2 and WHO in history[1] and chosen in history[1]
    assert "auto" in history[0]


async def test_every_page_fits_a_phone(browser: Browser, gateway: Gateway,
                                       seeded: Seeded) -> None:
    console = Console()
    page = await open_page(browser, PHONE, console)
    await page.goto(url(gateway, "/ui/calls"))
    assert await fits_width(page)
    await shot(page, "signin-phone")
    await sign_in(page, gateway, ADMIN_KEY)
    pages = {"calls": "/ui/calls", "call": f"/ui/calls/{seeded.pool_call}",
             "report": "/ui/reports/accuracy", "sources": "/ui/sources"}
    for name, path in pages.items():
        await page.goto(url(gateway, path))
        assert page.url.endswith(path), name
        assert await fits_width(page), f"{name} scrolls sideways at {PHONE['width']} px"
        await shot(page, f"{name}-phone")
    # On a phone the call log's rows are cards that still name each value.
    await page.goto(url(gateway, "/ui/calls"))
    label = await page.locator("td[data-label='Caller']").first.evaluate(
        "e => getComputedStyle(e, '::before').content")
    assert label == '"Caller"'
    assert console.problems() == []
    await page.context.close()


async def test_skip_link_and_landmarks(browser: Browser, gateway: Gateway) -> None:
    console = Console()
    page = await open_page(browser, LAPTOP, console)
    await sign_in(page, gateway, ADMIN_KEY)
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert await skip.evaluate("e => e === document.activeElement")
    await page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    assert await page.get_by_role("main").count() == 1
    assert await page.get_by_role("banner").count() == 1
    assert await page.get_by_role("navigation", name="Dashboard").count() == 1
    for control in ("Site", "Source", "From (UTC)", "To (UTC)", "Confidence"):
        assert await page.get_by_label(control, exact=True).count() == 1, control
    assert console.problems() == []
    await page.context.close()
