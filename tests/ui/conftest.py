"""Dashboard fixtures: calls made through the real (signed) voice webhook, a signed-in HTTP
client, and Debian's chromium launched as the swap.js browser tests launch it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

# The session's chromium, launched once for the swap.js and dashboard tests alike.
from tests.browser.conftest import browser  # noqa: F401 - a fixture, re-exported
from tests.conftest import Gateway
from tests.web.test_swap import ORIGIN, swap, wait_for
from tests.web.test_voice import post_call, signed

LANDING = "https://acme.test/plumbing?gclid=g-{n}&utm_source=google&utm_campaign=spring-{n}"
BILLBOARD = "+14155550199"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def base(gw: Gateway) -> str:
    """The gateway's own origin, as a browser on its pages would send it."""
    return str(gw.server.make_url("")).rstrip("/")


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def sign_in(gw: Gateway, key: str) -> int:
    """Sign the gateway's HTTP client in (its cookie jar keeps the cookie); the status."""
    form = await gw.client.get("/ui/signin")
    resp = await gw.client.post("/ui/signin", allow_redirects=False,
                                data={"key": key, "csrf": csrf_of(await form.text())},
                                headers={"Origin": base(gw)})
    return resp.status


@dataclass
class Seeded:
    """What `seed` made: the pool call with two candidates and the billboard call."""

    pool_call: str
    offline_call: str
    sessions: dict[str, str]  # session -> visitor of every candidate of the pool call


async def seed(gw: Gateway, db_url: str) -> Seeded:
    """Three Google Ads visitors on a two-number pool (so one number is shared), a click to
    call, then a call to the shared number and one to the billboard, with a status callback."""
    visits = [await swap(gw, url=LANDING.format(n=n)) for n in range(3)]
    by_number: dict[str, list[dict[str, str]]] = {}
    for v in visits:
        by_number.setdefault(v["number"], []).append(v)
    shared = next(n for n, vs in by_number.items() if len(vs) > 1)
    clicked = by_number[shared][-1]["session"]
    resp = await gw.client.post(f"/v1/sessions/{clicked}/events", json={"kind": "click_to_call"},
                                headers=ORIGIN)
    assert resp.status == 204, await resp.text()
    for call_id, to, caller in (("CAui0001", shared, "+14155559999"),
                                ("CAui0002", BILLBOARD, "+14155558888")):
        status, body = await post_call(gw, call_id, to, caller=caller)
        assert status == 200, body
    path = "/v1/voice/twilio/status?site=acme"
    status = {"CallSid": "CAui0002", "DialCallStatus": "completed", "DialCallDuration": "125",
              "CallStatus": "in-progress"}
    resp = await gw.client.post(path, **signed(path, status))
    assert resp.status == 200, await resp.text()
    assert await wait_for(db_url, "SELECT count(*) FROM calls WHERE duration = 125", 1) == 1
    assert await wait_for(db_url, "SELECT count(*) FROM call_candidates", 2) == 2
    return Seeded("CAui0001", "CAui0002",
                  {v["session"]: v["visitor"] for v in by_number[shared]})


@pytest.fixture
async def seeded(gateway: Gateway, db_url: str) -> Seeded:
    return await seed(gateway, db_url)
