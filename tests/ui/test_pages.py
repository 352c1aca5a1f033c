"""Dashboard pages over real HTTP: filters, pagination, escaping, headers, errors, assets."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.web import ui
from tests.conftest import ADMIN_KEY, Gateway
from tests.ui.conftest import Seeded, sign_in
from tests.web.test_swap import swap, wait_for
from tests.web.test_voice import post_call

ROW = re.compile(r'href="/ui/calls/([^"]+)"')


async def call_ids(gw: Gateway, query: str = "") -> tuple[int, list[str], str]:
    resp = await gw.client.get(f"/ui/calls{query}")
    text = await resp.text()
    return resp.status, ROW.findall(text), text


@pytest.fixture
async def signed_in(gateway: Gateway, seeded: Seeded) -> Seeded:
    assert await sign_in(gateway, ADMIN_KEY) == 303
    return seeded


async def test_call_log_lists_newest_first_and_filters(gateway: Gateway,
                                                        signed_in: Seeded) -> None:
    status, ids, page = await call_ids(gateway)
    assert status == 200 and ids == ["CAui0002", "CAui0001"]
    assert "(415) 555-8888" in page and "2:05 completed" in page  # caller, duration/status
    assert "https://acme.test/plumbing?gclid=g-" in page  # the matched visitor's landing page
    cases = {"?source=Billboard+I-80": ["CAui0002"], "?source=Google+Ads": ["CAui0001"],
             "?confidence=high": ["CAui0001"], "?confidence=low": [], "?site=acme":
             ["CAui0002", "CAui0001"], "?from=2000-01-01&to=2000-01-31": []}
    for query, expected in cases.items():
        assert (await call_ids(gateway, query))[1] == expected, query
    status, ids, page = await call_ids(gateway, "?from=yesterday")
    assert status == 422 and "from must be a date" in page and ids == []
    status, _, page = await call_ids(gateway, "?cursor=garbage")
    assert status == 422 and "cursor" in page


async def test_call_log_pages_with_the_api_cursor(gateway: Gateway, signed_in: Seeded,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui, "PAGE_SIZE", 1)
    seen, query = [], "?site=acme"
    for _ in range(5):
        resp = await gateway.client.get(f"/ui/calls{query}")
        text = await resp.text()
        seen += ROW.findall(text)
        older = re.search(r'href="/ui/calls(\?[^"]+)" rel="next"', text)
        if older is None:
            break
        query = older.group(1).replace("&amp;", "&")
        assert "site=acme" in query  # the filters ride along with the cursor
    assert seen == ["CAui0002", "CAui0001"]


async def test_user_controlled_text_is_escaped(gateway: Gateway, signed_in: Seeded,
                                               db_url: str) -> None:
    hostile = 'https://acme.test/?gclid=x&utm_campaign="><script>alert(1)</script>'
    v = await swap(gateway, url=hostile)
    assert (await post_call(gateway, "CAui0003", v["number"], caller="+14155557777"))[0] == 200
    await wait_for(db_url, "SELECT count(*) FROM calls WHERE id = 'CAui0003'", 1)
    log = await (await gateway.client.get("/ui/calls")).text()
    detail = await (await gateway.client.get("/ui/calls/CAui0003")).text()  # a candidate there
    assert "<script>" not in log and "<script>" not in detail
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in detail


async def test_pages_carry_a_strict_content_security_policy(gateway: Gateway,
                                                            signed_in: Seeded) -> None:
    for path in ("/ui/signin", "/ui/calls", f"/ui/calls/{signed_in.pool_call}", "/ui/sources",
                 "/ui/calls/CAnope"):
        resp = await gateway.client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, path
        assert "script-src" not in csp and "unsafe" not in csp
        assert resp.headers["Cache-Control"] == "no-store"
        assert resp.headers["Content-Type"].startswith("text/html")


async def test_unknown_call_is_a_404_page(gateway: Gateway, signed_in: Seeded) -> None:
    resp = await gateway.client.get("/ui/calls/CAnope")
    assert resp.status == 404 and "There is no call with this id." in await resp.text()


async def test_sources_page_shows_config_and_live_pool_state(gateway: Gateway,
                                                             signed_in: Seeded) -> None:
    text = await (await gateway.client.get("/ui/sources")).text()
    assert "Acme Plumbing" in text and "Billboard I-80" in text and "<code>gclid</code>" in text
    assert "(415) 555-0101" in text and "(415) 555-0199" in text
    assert "2 reserved, 0 cooling, 0 free" in text  # three live sessions on a pool of two
    assert "calls scored with the mixed profile" in text


async def test_use_of_an_unknown_session_says_so(gateway: Gateway, signed_in: Seeded) -> None:
    page = await (await gateway.client.get(f"/ui/calls/{signed_in.pool_call}")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    resp = await gateway.client.post(
        f"/ui/calls/{signed_in.pool_call}/use", data={"session": "s_nope", "csrf": csrf[1]},
        headers={"Origin": str(gateway.server.make_url("")).rstrip("/")})
    assert resp.status == 200 and "failed=unknown_session" in str(resp.url)
    assert "no longer held in memory" in await resp.text()


async def test_assets_are_versioned_and_cached(gateway: Gateway) -> None:
    page = await (await gateway.client.get("/ui/signin")).text()
    href = re.search(r'href="(/ui/static/ui\.css\?v=[0-9a-f]+)"', page)
    assert href
    resp = await gateway.client.get(href[1])
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/css")
    assert "immutable" in resp.headers["Cache-Control"]
    assert (await gateway.client.get("/ui/static/ui.css?v=old")).headers[
        "Cache-Control"] == "no-cache"
    assert (await gateway.client.get("/ui/static/swap.js")).status == 404


def documented_report(site: str, since: float, until: float) -> dict[str, Any]:
    """A report shaped as `reports.accuracy_report` documents it: an online and an offline
    source, with a source name that tries to inject markup."""
    online = {
        "site": site, "source": "Google <b>Ads</b>", "kind": "online", "daily_visitors": 130.0,
        "pool_size": 2, "guideline_pool": 7, "ratio_vs_guideline": 0.29,
        "peak_hour_sessions": 14.0, "mean_reservation_s": 1900.0, "offered_load_erlangs": 7.4,
        "shared_share": 0.31, "erlang_b_blocking": 0.7, "calls": 12,
        "single_candidate_share": 0.4, "mean_likelihood": 0.71,
        "likelihood_histogram": [0, 1, 0, 2, 1, 0, 1, 2, 2, 3], "below_threshold_share": 0.6,
        "recommended_pool": 9, "predicted_accuracy_now": 0.62,
        "predicted_accuracy_at_recommended": 0.97, "verdict": "more numbers", "change": 7,
        "reason": "31% of visits shared a number at peak", "reserved_by_hour": [1.5] * 24}
    offline = {"site": site, "source": "Billboard I-80", "kind": "offline", "calls": 1,
               "calls_per_number": {"+14155550199": 1}, "unused_numbers": []}
    return {"site": site, "from": since, "to": until, "threshold": 0.9, "target": 0.02,
            "sources": [online, offline]}


async def test_report_page_renders_verdicts_figures_and_charts(
        gateway: Gateway, signed_in: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dict[str, Any]] = []

    async def fake(pool: Any, config: Any, *, site: str, since: float, until: float,
                   **kw: Any) -> dict[str, Any]:
        asked.append({"site": site, "since": since, "until": until})
        return documented_report(site, since, until)

    monkeypatch.setattr(ui.reports, "accuracy_report", fake)
    resp = await gateway.client.get("/ui/reports/accuracy?site=acme&from=2025-11-01&to=2025-11-07")
    text = await resp.text()
    assert resp.status == 200
    assert asked == [{"site": "acme", "since": 1761955200.0, "until": 1761955200.0 + 7 * 86400}]
    assert '<p class="verdict verdict-more"><strong>more numbers</strong> <span>(+7 numbers)' \
        in text
    assert "Erlang B blocking at peak</dt><dd>70.0%" in text and "31.7 min" in text
    assert "Calls per number</dt><dd>(415) 555-0199: 1" in text
    assert text.count('<svg class="chart"') == 2 and "pool 2" in text
    assert "<b>Ads</b>" not in text and "Google &lt;b&gt;Ads&lt;/b&gt;" in text
    bad = await gateway.client.get("/ui/reports/accuracy?from=2025-11-07&to=2025-11-01")
    assert bad.status == 422 and "to must not be before from" in await bad.text()
    unknown = await gateway.client.get("/ui/reports/accuracy?site=nope")
    assert unknown.status == 404
