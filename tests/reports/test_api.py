"""`GET /v1/reports/accuracy` on a real socket: JSON, CSV, defaults, auth and bad parameters."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.web.reports import CSV_COLUMNS
from scoring import sizing
from tests.conftest import ADMIN_KEY, Gateway, start_gateway
from tests.reports import sim
from tests.reports.conftest import SimDb, SimReport, online
from tests.reports.test_verdicts import TOO_SMALL
from tests.web.test_swap import swap, wait_for
from tests.web.test_voice import post_call

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
PERIOD = {"site": "sim", "from": "2024-01-01", "to": "2024-01-08T00:00:00Z"}
URL = "/v1/reports/accuracy"


@pytest.fixture
async def sim_gateway(sim_db: SimDb, tmp_path: Path) -> AsyncIterator[Gateway]:
    """The gateway serving the database that holds the simulated week (pool of TOO_SMALL)."""
    settings = Settings(database_url=await sim_db(TOO_SMALL), data_dir=tmp_path / "data",
                        admin_key=ADMIN_KEY, public_url="http://gateway.test",
                        twilio_auth_tokens=("twilio-token-1",), flush_interval_s=0.05)
    gw = await start_gateway(settings)
    yield gw
    await gw.client.close()


async def _get(gw: Gateway, headers: dict[str, str] | None = None, **query: str) -> Any:
    return await gw.client.get(URL, params=query, headers={**AUTH, **(headers or {})})


async def test_json_is_the_report(sim_gateway: Gateway, sim_report: SimReport) -> None:
    resp = await _get(sim_gateway, **PERIOD)
    assert resp.status == 200 and resp.content_type == "application/json"
    body = await resp.json()
    assert body == await sim_report(TOO_SMALL)
    assert (body["from"], body["to"]) == (sim.SINCE, sim.UNTIL)
    assert online(body)["verdict"] == sizing.MORE


@pytest.mark.parametrize(("headers", "query"), [
    ({"Accept": "text/csv"}, {}),
    ({"Accept": "application/json"}, {"format": "csv"}),
    ({"Accept": "text/html, text/csv;q=0.9"}, {}),
])
async def test_csv_by_accept_header_or_format(sim_gateway: Gateway, headers: dict[str, str],
                                              query: dict[str, str]) -> None:
    resp = await _get(sim_gateway, headers, **PERIOD, replay="false", **query)
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    pool, billboard = rows
    assert (pool["source"], pool["kind"], pool["verdict"]) == (sim.SOURCE, "online",
                                                                 sizing.MORE)
    assert int(pool["change"]) > 0 and pool["predicted_accuracy_now"] == ""
    assert pool["reserved_h14"] and pool["likelihood_0.9_1.0"]
    assert (billboard["kind"], billboard["calls"]) == ("offline", str(sim.BILLBOARD_CALLS))
    assert billboard["unused_numbers"] == sim.BILLBOARD_NUMBERS[1]


async def test_json_wins_over_csv_when_format_says_so(sim_gateway: Gateway) -> None:
    resp = await _get(sim_gateway, {"Accept": "text/csv"}, **PERIOD, replay="0",
                      format="json")
    assert resp.content_type == "application/json"


@pytest.mark.parametrize(("query", "field"), [
    ({"from": "yesterday"}, "from"),
    ({"to": "2024-13-45"}, "to"),
    ({"from": "2024-01-08", "to": "2024-01-01"}, "from"),
    ({"from": "2020-01-01", "to": "2024-01-01"}, "from"),
    ({"threshold": "1.5"}, "threshold"),
    ({"threshold": "high"}, "threshold"),
    ({"target": "0"}, "target"),
    ({"target": "nan"}, "target"),
    ({"format": "xml"}, "format"),
    ({"replay": "maybe"}, "replay"),
])
async def test_bad_parameters_are_422_naming_the_field(sim_gateway: Gateway,
                                                       query: dict[str, str], field: str) -> None:
    resp = await _get(sim_gateway, **{**PERIOD, **query})
    assert resp.status == 422, await resp.text()
    err = (await resp.json())["error"]
    assert (err["code"], err["field"]) == ("invalid", field)


async def test_unknown_site_is_404(sim_gateway: Gateway) -> None:
    resp = await _get(sim_gateway, site="nope")
    assert resp.status == 404 and (await resp.json())["error"]["field"] == "site"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key-0123456789"}])
async def test_no_or_wrong_key_is_401(sim_gateway: Gateway, headers: dict[str, str]) -> None:
    resp = await sim_gateway.client.get(URL, params=PERIOD, headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["field"] == "Authorization"


async def test_live_traffic_through_swap_and_voice_defaults_to_the_last_week(
    gateway: Gateway, db_url: str
) -> None:
    first = await swap(gateway)
    await swap(gateway, url="https://acme.test/?gclid=g2")
    status, _ = await post_call(gateway, "CAreport1", first["number"])
    assert status == 200
    await wait_for(db_url, "SELECT count(*) FROM calls", 1)
    await wait_for(db_url, "SELECT count(*) FROM sessions", 2)
    resp = await _get(gateway)
    body = await resp.json()
    assert resp.status == 200 and body["site"] is None
    assert body["to"] - body["from"] == pytest.approx(7 * 86_400)
    ads = next(r for r in body["sources"] if r["source"] == "Google Ads")
    assert (ads["sessions"], ads["calls"], ads["pool_size"]) == (2, 1, 2)
    assert ads["single_candidate_share"] == 1.0 and ads["shared_share"] == 0.0  # 2 numbers
    # One candidate: right whenever the call is not noise (accuracy leaves noise calls out).
    assert ads["predicted_accuracy_now"] == 1.0 and ads["mean_likelihood"] < 1.0
    assert ads["verdict"] in sizing.VERDICTS and ads["reason"].endswith(".")
    billboard = next(r for r in body["sources"] if r["kind"] == "offline")
    assert billboard["unused_numbers"] == ["+14155550199"]


async def test_the_openapi_document_lists_the_report(gateway: Gateway) -> None:
    doc = await (await gateway.client.get("/v1/openapi.json")).json()
    op = doc["paths"][URL]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"site", "from", "to", "threshold",
                                                     "target", "format"}
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/csv"}
