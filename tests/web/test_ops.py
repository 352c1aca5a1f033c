"""Operator endpoints, the OpenAPI document, and readiness against a database that goes away."""

import asyncio
from pathlib import Path

from gateway.settings import Settings
from gateway.web.openapi import document
from tests import pg
from tests.conftest import ADMIN_KEY, DEMO_CONFIG, Gateway, start_gateway


async def test_health_ready_and_metrics(gateway: Gateway) -> None:
    c = gateway.client
    assert (await (await c.get("/healthz")).json()) == {"status": "ok"}
    ready = await c.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"engine": True, "database": True,
                                              "migrations": True}
    assert ready.headers["X-Request-Id"]
    text = await (await c.get("/metrics")).text()
    assert 'dni_http_requests_total{method="GET",route="/readyz",status="200"}' in text
    assert 'dni_pool_numbers{site="acme",source="Google Ads"} 2.0' in text
    assert "dni_writer_queue_depth" in text


async def test_request_id_is_echoed_when_plain_and_replaced_when_not(gateway: Gateway) -> None:
    c = gateway.client
    resp = await c.get("/healthz", headers={"X-Request-Id": "abc-12345678"})
    assert resp.headers["X-Request-Id"] == "abc-12345678"
    resp = await c.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert resp.headers["X-Request-Id"] != "<script>"


async def test_unknown_route_and_method_are_json_errors(gateway: Gateway) -> None:
    resp = await gateway.client.get("/nope")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await gateway.client.delete("/v1/swap")
    assert resp.status == 405 and "POST" in resp.headers["Allow"]


async def test_every_route_is_in_the_openapi_document(gateway: Gateway) -> None:
    served = await (await gateway.client.get("/v1/openapi.json")).json()
    assert served == document()
    for route in gateway.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method == "HEAD" or not path.startswith(("/v1", "/healthz", "/readyz",
                                                          "/metrics")):
            continue
        assert path in served["paths"], path
        assert route.method.lower() in served["paths"][path], (route.method, path)


async def test_readiness_flips_when_the_database_goes_and_comes_back(tmp_path: Path) -> None:
    server = await asyncio.get_running_loop().run_in_executor(None, pg.Restartable)
    url = await pg.create_database(server.url)
    settings = Settings(database_url=url, data_dir=tmp_path / "data",
                        admin_key=ADMIN_KEY, flush_interval_s=0.05)
    gw = await start_gateway(settings)
    try:
        await gw.import_config(DEMO_CONFIG)
        assert (await gw.client.get("/readyz")).status == 200
        await asyncio.get_running_loop().run_in_executor(None, server.stop)
        resp = await gw.client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["checks"]["database"] is False
        assert (await gw.client.get("/healthz")).status == 200
        await asyncio.get_running_loop().run_in_executor(None, server.start)
        for _ in range(50):
            if (await gw.client.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.1)
        assert (await gw.client.get("/readyz")).status == 200
    finally:
        await gw.client.close()
        server.remove()
