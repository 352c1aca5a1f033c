"""Admin API round trips and every error the foundation issue lists, against real Postgres."""

import io
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, Gateway

SITE = {"key": "bravo", "name": "Bravo Dental", "swap_targets": ["(212) 555-0100"],
        "allowed_origins": ["https://bravo.test"],
        "sources": [{"name": "Google Ads", "kind": "online", "match": {"gclid": True},
                     "forward_to": "212-555-0100", "numbers": ["+1 650 555 0101"]}]}


async def _json(resp: Any, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_missing_and_wrong_keys_are_refused(gateway: Gateway) -> None:
    c = gateway.client
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {ADMIN_KEY}"}):
        body = await _json(await c.get("/v1/sites", headers=headers), 401)
        assert body["error"]["code"] == "unauthorized"


async def test_site_round_trip_normalises_numbers(gateway: Gateway) -> None:
    c, auth = gateway.client, gateway.auth
    created = await _json(await c.post("/v1/sites", json=SITE, headers=auth), 201)
    assert created["swap_targets"] == ["+12125550100"]
    assert created["sources"][0]["numbers"] == ["+16505550101"]
    listed = await _json(await c.get("/v1/sites", headers=auth), 200)
    assert {s["key"] for s in listed["sites"]} == {"acme", "bravo"}
    patched = await _json(await c.patch("/v1/sites/bravo", json={"name": "Bravo"},
                                        headers=auth), 200)
    assert patched["name"] == "Bravo" and patched["sources"][0]["name"] == "Google Ads"
    await _json(await c.get("/v1/sites/bravo", headers=auth), 200)
    resp = await c.delete("/v1/sites/bravo", headers=auth)
    assert resp.status == 204
    await _json(await c.get("/v1/sites/bravo", headers=auth), 404)


async def test_duplicate_site_key_is_a_conflict(gateway: Gateway) -> None:
    body = await _json(await gateway.client.post(
        "/v1/sites", json={**SITE, "key": "acme", "sources": []}, headers=gateway.auth), 409)
    assert body["error"]["field"] == "key"


async def test_duplicate_number_is_a_conflict(gateway: Gateway) -> None:
    taken = {**SITE, "sources": [{**SITE["sources"][0], "numbers": ["+14155550101"]}]}
    body = await _json(await gateway.client.post("/v1/sites", json=taken,
                                                 headers=gateway.auth), 409)
    assert "already belongs" in body["error"]["message"]
    body = await _json(await gateway.client.post(
        "/v1/numbers", json={"site": "acme", "source": "Google Ads", "number": "415-555-0102"},
        headers=gateway.auth), 409)
    assert body["error"]["field"] == "number"


async def test_invalid_phone_number_names_the_field(gateway: Gateway) -> None:
    bad = {**SITE, "sources": [{**SITE["sources"][0], "numbers": ["+1 650 555 0101", "12"]}]}
    body = await _json(await gateway.client.post("/v1/sites", json=bad, headers=gateway.auth),
                       422)
    assert body["error"]["field"] == "sources[0].numbers[1]"
    body = await _json(await gateway.client.post(
        "/v1/numbers", json={"site": "acme", "source": "Google Ads", "number": "not a number"},
        headers=gateway.auth), 422)
    assert body["error"]["field"] == "number"


async def test_unknown_ids_are_404(gateway: Gateway) -> None:
    c, auth = gateway.client, gateway.auth
    for path in ("/v1/sites/nope", "/v1/sources/999999", "/v1/sources/x",
                 "/v1/numbers/+19999999999"):
        body = await _json(await c.get(path, headers=auth), 404)
        assert body["error"]["code"] == "not_found"


async def test_malformed_json_says_where(gateway: Gateway) -> None:
    resp = await gateway.client.post("/v1/sites", data=b'{"key": "x",\n "name": }',
                                     headers={**gateway.auth, "Content-Type": "application/json"})
    body = await _json(resp, 400)
    assert "line 2" in body["error"]["message"]


async def test_body_over_the_limit_is_413(gateway: Gateway) -> None:
    big = b'{"key": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    resp = await gateway.client.post("/v1/sites", data=io.BytesIO(big),
                                     headers={**gateway.auth, "Content-Type": "application/json"})
    body = await _json(resp, 413)
    assert body["error"]["code"] == "too_large"


async def test_sources_crud(gateway: Gateway) -> None:
    c, auth = gateway.client, gateway.auth
    src = await _json(await c.post("/v1/sources", json={
        "site": "acme", "name": "Bing Ads", "kind": "online", "match": {"msclkid": True},
        "forward_to": "+18005550100", "numbers": ["+14155550121"]}, headers=auth), 201)
    assert src["site"] == "acme" and isinstance(src["id"], int)
    renamed = await _json(await c.patch(f"/v1/sources/{src['id']}", json={"name": "Bing"},
                                        headers=auth), 200)
    assert renamed["id"] == src["id"] and renamed["numbers"] == ["+14155550121"]
    listed = await _json(await c.get("/v1/sources?site=acme", headers=auth), 200)
    assert [s["name"] for s in listed["sources"]] == ["Google Ads", "Billboard I-80", "Bing"]
    await _json(await c.post("/v1/sources", json={"site": "acme", "name": "Bing",
                                                  "kind": "online", "forward_to": "+18005550100",
                                                  "numbers": ["+14155550122"]},
                             headers=auth), 409)
    body = await _json(await c.post("/v1/sources", json={"site": "acme", "name": "X",
                                                         "kind": "radio",
                                                         "forward_to": "+18005550100"},
                                    headers=auth), 422)
    assert body["error"]["field"].endswith("kind")
    assert (await c.delete(f"/v1/sources/{src['id']}", headers=auth)).status == 204
    await _json(await c.get(f"/v1/sources/{src['id']}", headers=auth), 404)


async def test_numbers_crud_and_deactivation_reaches_the_engine(gateway: Gateway) -> None:
    c, auth = gateway.client, gateway.auth
    created = await _json(await c.post("/v1/numbers", json={
        "site": "acme", "source": "Google Ads", "number": "(415) 555-0103"}, headers=auth), 201)
    assert created == {"number": "+14155550103", "site": "acme", "source": "Google Ads",
                       "source_id": created["source_id"], "active": True}
    assert _engine(gateway).lookup("+14155550103").source == "Google Ads"
    off = await _json(await c.patch("/v1/numbers/+14155550103", json={"active": False},
                                     headers=auth), 200)
    assert off["active"] is False
    from gateway.engine.errors import UnknownNumber

    with pytest.raises(UnknownNumber):
        _engine(gateway).lookup("+14155550103")
    listed = await _json(await c.get("/v1/numbers?site=acme&source=Google%20Ads",
                                     headers=auth), 200)
    assert [n["number"] for n in listed["numbers"]] == ["+14155550101", "+14155550102",
                                                        "+14155550103"]
    assert (await c.delete("/v1/numbers/+14155550103", headers=auth)).status == 204
    await _json(await c.get("/v1/numbers/+14155550103", headers=auth), 404)


def _engine(gateway: Gateway) -> Any:
    from gateway.web.keys import STATE

    return gateway.app[STATE].engine


async def test_import_is_all_or_nothing(gateway: Gateway) -> None:
    c, auth = gateway.client, gateway.auth
    good = {**SITE, "key": "charlie", "sources": [{**SITE["sources"][0],
                                                    "numbers": ["+16505550111"]}]}
    bad = {**SITE, "key": "delta", "sources": [{**SITE["sources"][0],
                                                 "numbers": ["+16505550112", "555"]}]}
    body = await _json(await c.post("/v1/import", json={"sites": [good, bad]}, headers=auth),
                       422)
    assert body["error"]["field"] == "sites[1].sources[0].numbers[1]"
    listed = await _json(await c.get("/v1/sites", headers=auth), 200)
    assert [s["key"] for s in listed["sites"]] == ["acme"]
    # A conflict found only by the database also rolls back the sites before it.
    clash = {**SITE, "key": "echo", "sources": [{**SITE["sources"][0],
                                                  "numbers": ["+14155550101"]}]}
    await _json(await c.post("/v1/import", json={"sites": [good, clash]}, headers=auth), 409)
    listed = await _json(await c.get("/v1/sites", headers=auth), 200)
    assert [s["key"] for s in listed["sites"]] == ["acme"]


async def test_import_accepts_toml_and_reports_bad_toml(gateway: Gateway) -> None:
    c = gateway.client
    toml = b'''[[sites]]
key = "foxtrot"
name = "Foxtrot"
swap_targets = ["+12125550100"]
  [[sites.sources]]
  name = "Billboard"
  kind = "offline"
  forward_to = "+12125550100"
  numbers = ["+16505550131"]
'''
    headers = {**gateway.auth, "Content-Type": "application/toml"}
    body = await _json(await c.post("/v1/import", data=toml, headers=headers), 200)
    assert body["imported"] == ["foxtrot"]
    assert _engine(gateway).lookup("+16505550131").kind == "offline"
    body = await _json(await c.post("/v1/import", data=b"[[sites]\nkey=", headers=headers), 400)
    assert "TOML" in body["error"]["message"]


async def test_no_error_response_carries_a_stack_trace(gateway: Gateway) -> None:
    c, auth = gateway.client, gateway.auth
    for method, path, data in (("POST", "/v1/sites", b"[1,2]"), ("POST", "/v1/import", b"null"),
                               ("PUT", "/v1/sites/acme", b'{"sources": 5}'),
                               ("POST", "/v1/sources", b'{"site": 7}')):
        resp = await c.request(method, path, data=data,
                               headers={**auth, "Content-Type": "application/json"})
        text = await resp.text()
        assert 400 <= resp.status < 500, text
        assert "Traceback" not in text and "File \"" not in text
