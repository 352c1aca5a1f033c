"""The middleware on its own: request id in the log context for exactly one request, errors as
JSON, metrics by route (a bare app, no database)."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from gateway.web.keys import METRICS
from gateway.web.metrics import Metrics
from gateway.web.middleware import observe


async def context(request: web.Request) -> web.Response:
    return web.json_response(structlog.contextvars.get_contextvars())


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret detail")


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application(middlewares=[observe])
    app[METRICS] = Metrics(dict)
    app.router.add_get("/context", context)
    app.router.add_get("/boom", boom)
    c = TestClient(TestServer(app, port=0))
    await c.start_server()
    yield c
    await c.close()


async def test_request_id_is_bound_for_the_request_only(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/context", headers={"X-Request-Id": "trace-12345678"})
    assert await resp.json() == {"request_id": "trace-12345678"}
    assert resp.headers["X-Request-Id"] == "trace-12345678"
    generated = await client.get("/context", headers={"X-Request-Id": "bad id\twith tab"})
    rid = (await generated.json())["request_id"]
    assert rid == generated.headers["X-Request-Id"] and rid != "bad id\twith tab"
    assert structlog.contextvars.get_contextvars() == {}


async def test_errors_are_json_and_counted(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/boom")
    assert resp.status == 500
    body = await resp.json()
    assert body["error"]["code"] == "internal" and "secret" not in await resp.text()
    assert resp.headers["X-Request-Id"] and resp.headers["Server"] == "dni-gateway"
    missing = await client.get("/nope")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    assert client.app is not None
    exported = generate_latest(client.app[METRICS].registry).decode()
    assert 'dni_http_requests_total{method="GET",route="/boom",status="500"} 1.0' in exported
    assert 'dni_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in exported
