"""Browser fixtures: Debian's chromium driven by Playwright, and a customer website served by
the test on its own origin (127.0.0.1, another port 0) that pastes in the gateway's swap.js."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from tests.conftest import Gateway

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TARGET = "+18005550100"
POOL = ("+14155550101", "+14155550102")


def site_config(*origins: str, key: str = "acme") -> dict[str, Any]:
    return {"sites": [{
        "key": key, "name": "Acme Plumbing", "swap_targets": [TARGET],
        "allowed_origins": list(origins),
        "sources": [
            {"name": "Google Ads", "kind": "online", "match": {"gclid": True},
             "forward_to": TARGET, "numbers": list(POOL)},
            {"name": "Billboard I-80", "kind": "offline", "forward_to": TARGET,
             "numbers": ["+14155550199"]},
        ],
    }]}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (.ci/run installs it)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@dataclass
class Customer:
    """The customer's website: pages by name, served at /<name> on the customer's origin."""

    server: TestServer
    pages: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def url(self, name: str, query: str = "") -> str:
        return f"{self.origin}/{name}{query}"


@pytest.fixture
async def customer() -> AsyncIterator[Customer]:
    app = web.Application()
    server = TestServer(app, host="127.0.0.1", port=0)
    site = Customer(server)

    async def page(request: web.Request) -> web.Response:
        body = site.pages.get(request.match_info["name"])
        if body is None:
            raise web.HTTPNotFound
        return web.Response(text=body, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    app.router.add_get("/{name}", page)
    await server.start_server()
    yield site
    await server.close()


@pytest.fixture
async def acme(gateway: Gateway, customer: Customer) -> Gateway:
    """The gateway with the acme site allowing the customer's origin."""
    await gateway.import_config(site_config(customer.origin))
    return gateway


@dataclass
class Console:
    """What a page said: console messages and uncaught errors."""

    messages: list[ConsoleMessage] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        # Playwright tags its handlers with an attribute, which builtins like list.append refuse.
        page.on("console", lambda m: self.messages.append(m))  # noqa: PLW0108
        page.on("pageerror", lambda e: self.errors.append(e))  # noqa: PLW0108
        return page

    def problems(self) -> list[str]:
        said = [f"{m.type}: {m.text}" for m in self.messages if m.type in ("error", "warning")]
        return said + [f"pageerror: {e}" for e in self.errors]
