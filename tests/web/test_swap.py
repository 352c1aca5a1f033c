"""The swap API over real sockets, the write-behind writer on real Postgres, and restarts."""

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from gateway.settings import Settings
from gateway.web.keys import STATE
from tests import pg
from tests.conftest import ADMIN_KEY, DEMO_CONFIG, Gateway, start_gateway

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
ORIGIN = {"Origin": "https://acme.test", "User-Agent": UA}
POOL = {"+14155550101", "+14155550102"}


async def swap(gw: Gateway, visitor: str | None = None, url: str = "https://acme.test/?gclid=g1",
               headers: dict[str, str] | None = None, **extra: Any) -> Any:
    body = {"site": "acme", "visitor": visitor, "url": url, "referrer": None, **extra}
    resp = await gw.client.post("/v1/swap", json=body, headers=headers or ORIGIN)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def wait_for(pool_url: str, sql: str, expected: Any, *args: Any) -> Any:
    conn = await asyncpg.connect(pool_url)
    try:
        value = None
        for _ in range(100):
            value = await conn.fetchval(sql, *args)
            if value == expected:
                return value
            await asyncio.sleep(0.05)
        return value
    finally:
        await conn.close()


async def test_swap_answers_a_pool_number_and_keeps_the_session(gateway: Gateway) -> None:
    first = await swap(gateway)
    assert set(first) == {"visitor", "session", "source", "number", "formatted", "replaces"}
    assert first["source"] == "Google Ads" and first["number"] in POOL
    assert first["formatted"] == "(415) 555-010" + first["number"][-1]
    assert first["replaces"] == ["+18005550100"]
    again = await swap(gateway, visitor=first["visitor"], url="https://acme.test/pricing")
    assert (again["session"], again["number"]) == (first["session"], first["number"])
    other = await swap(gateway)
    assert other["number"] in POOL - {first["number"]}  # no sharing while a number is free


async def test_bots_get_the_site_number_and_no_session(gateway: Gateway) -> None:
    body = await swap(gateway, headers={**ORIGIN, "User-Agent": "Googlebot/2.1"})
    assert body["session"] is None and body["number"] == "+18005550100"


async def test_cors_allows_the_site_origin_only(gateway: Gateway) -> None:
    resp = await gateway.client.post("/v1/swap", json={"site": "acme", "url": "https://acme.test/"},
                                     headers=ORIGIN)
    assert resp.headers["Access-Control-Allow-Origin"] == "https://acme.test"
    resp = await gateway.client.post("/v1/swap", json={"site": "acme", "url": "https://x.test/"},
                                     headers={**ORIGIN, "Origin": "https://evil.test"})
    assert resp.status == 403 and (await resp.json())["error"]["field"] == "Origin"
    pre = await gateway.client.options("/v1/swap", headers={
        "Origin": "https://acme.test", "Access-Control-Request-Method": "POST"})
    assert pre.status == 204 and pre.headers["Access-Control-Allow-Origin"] == "https://acme.test"


async def test_swap_answer_headers_and_metrics(gateway: Gateway) -> None:
    c = gateway.client
    resp = await c.post("/v1/swap", json={"site": "acme", "url": "https://acme.test/?gclid=h"},
                        headers={**ORIGIN, "X-Request-Id": "trace-12345678"})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Access-Control-Allow-Origin"] == "https://acme.test"
    assert resp.headers["Vary"] == "Origin"
    assert resp.headers["X-Request-Id"] == "trace-12345678"
    assert resp.headers["Server"] == "dni-gateway"
    assert json.loads(await resp.read())["session"].startswith("s_")
    no_origin = await c.post("/v1/swap", json={"site": "acme", "url": "https://acme.test/"},
                             headers={"User-Agent": UA})
    assert no_origin.status == 200 and "Access-Control-Allow-Origin" not in no_origin.headers
    assert no_origin.headers["Cache-Control"] == "no-store"
    text = await (await c.get("/metrics")).text()
    assert 'dni_swaps_total{outcome="session",site="acme"} 1.0' in text
    assert 'dni_swaps_total{outcome="own_number",site="acme"} 1.0' in text
    assert 'dni_http_requests_total{method="POST",route="/v1/swap",status="200"} 2.0' in text
    assert 'dni_http_request_seconds_count{method="POST",route="/v1/swap"} 2.0' in text


async def test_swap_input_errors_name_the_field(gateway: Gateway) -> None:
    c = gateway.client
    cases = [({"url": "https://acme.test/"}, 422, "site"),
             ({"site": "acme"}, 422, "url"),
             ({"site": "acme", "url": 5}, 422, "url"),
             ({"site": "acme", "url": "https://acme.test/", "visitor": ["x"]}, 422, "visitor"),
             ({"site": "nope", "url": "https://acme.test/"}, 404, "site"),
             ({"site": "acme", "url": "https://acme.test/" + "a" * 5000}, 422, "url")]
    for body, status, field in cases:
        resp = await c.post("/v1/swap", json=body, headers=ORIGIN)
        assert resp.status == status, (body, await resp.text())
        assert (await resp.json())["error"]["field"] == field
    resp = await c.post("/v1/swap", data=b"{nope",
                        headers={**ORIGIN, "Content-Type": "text/plain"})
    assert resp.status == 400
    resp = await c.post("/v1/swap", data=b"{}", headers={**ORIGIN, "Content-Type": "image/png"})
    assert resp.status == 415


async def test_events_are_recorded_and_checked(gateway: Gateway) -> None:
    s = (await swap(gateway))["session"]
    c = gateway.client
    for kind in ("pageview", "ping", "click_to_call", "hidden"):
        resp = await c.post(f"/v1/sessions/{s}/events", json={"kind": kind}, headers=ORIGIN)
        assert resp.status == 204, await resp.text()
    bad = await c.post(f"/v1/sessions/{s}/events", json={"kind": "dance"}, headers=ORIGIN)
    assert bad.status == 422 and (await bad.json())["error"]["field"] == "kind"
    gone = await c.post("/v1/sessions/s_unknown/events", json={"kind": "ping"}, headers=ORIGIN)
    assert gone.status == 404


async def test_over_the_rate_limit_gets_the_site_number(settings: Settings) -> None:
    gw = await start_gateway(replace(settings, swap_rate_per_minute=8))
    try:
        await gw.import_config(DEMO_CONFIG)
        answers = [await swap(gw) for _ in range(6)]
        assert answers[0]["session"] is not None
        assert answers[-1]["session"] is None and answers[-1]["number"] == "+18005550100"
    finally:
        await gw.client.close()


async def test_sessions_and_events_reach_postgres(gateway: Gateway, db_url: str) -> None:
    v = await swap(gateway)
    await gateway.client.post(f"/v1/sessions/{v['session']}/events",
                              json={"kind": "click_to_call"}, headers=ORIGIN)
    assert await wait_for(db_url, "SELECT count(*) FROM session_events WHERE session = $1", 1,
                          v["session"]) == 1
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT * FROM sessions WHERE id = $1", v["session"])
        assert row["number"] == v["number"] and row["source"] == "Google Ads"
        assert json.loads(row["attribution"]) == {"gclid": "g1"}
        assert row["last_click_to_call"] is not None
        assert await conn.fetchval("SELECT count(*) FROM visitors WHERE id = $1", v["visitor"]) == 1
    finally:
        await conn.close()


async def test_write_behind_survives_the_database_going_away(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.run_in_executor(None, pg.Restartable)
    url = await pg.create_database(server.url)
    settings = Settings(database_url=url, data_dir=tmp_path / "data", admin_key=ADMIN_KEY,
                        flush_interval_s=0.05)
    gw = await start_gateway(settings)
    try:
        await gw.import_config(DEMO_CONFIG)
        await loop.run_in_executor(None, server.stop)
        visits = [await swap(gw) for _ in range(20)]  # still answered with the db down
        assert all(v["session"] for v in visits)
        await asyncio.sleep(0.3)
        assert gw.app[STATE].writer.depth >= 20
        await loop.run_in_executor(None, server.start)
        ids = sorted(v["session"] for v in visits)
        got = await wait_for(url, "SELECT array_agg(id ORDER BY id) FROM sessions", ids)
        assert got == ids
    finally:
        await gw.client.close()
        server.remove()


async def test_restart_keeps_numbers_and_live_reservations(settings: Settings) -> None:
    gw = await start_gateway(settings)
    await gw.import_config(DEMO_CONFIG)
    first = await swap(gw)
    await gw.client.close()  # graceful: the writer drains on shutdown
    gw = await start_gateway(settings)
    try:
        returning = await swap(gw, visitor=first["visitor"])
        assert returning["number"] == first["number"]
        newcomer = await swap(gw)
        assert newcomer["number"] in POOL - {first["number"]}  # the reservation still holds
    finally:
        await gw.client.close()
