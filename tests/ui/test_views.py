"""The dashboard's view functions and SVG charts, without a server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from gateway.engine.config import parse_config
from gateway.web import ui_charts, ui_views

SVG = "{http://www.w3.org/2000/svg}"


def parse_svg(markup: str) -> ET.Element:
    return ET.fromstring(str(markup).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))


def test_filter_form_becomes_the_api_query() -> None:
    form = {"site": "acme", "source": "", "from": "2025-11-01", "to": "2025-11-02",
            "confidence": "medium", "cursor": "abc"}
    assert ui_views.api_query(form) == {
        "site": "acme", "cursor": "abc", "from": "1761955200.0",
        "to": str(1761955200.0 + 2 * 86400),  # to is inclusive: up to the next day's 00:00
        "min_likelihood": "0.5", "max_likelihood": "0.8"}
    assert ui_views.api_query({"confidence": "bogus"}) == {}
    with pytest.raises(ValueError, match="to must be a date"):
        ui_views.api_query({"to": "tomorrow"})


def test_candidates_keep_the_engine_order_with_their_timeline() -> None:
    details = {"started_at": 100.0, "last_activity": 400.0, "last_click_to_call": 300.0,
               "pageviews": 3, "utm": {"utm_source": "g"}, "click_ids": {"gclid": "x"}}
    call = {"session": "s_a1", "candidates": [  # v_a's two sessions outweigh v_b's one
        {"session": "s_a1", "visitor": "v_a", "likelihood": 0.35, "details": details},
        {"session": "s_a2", "visitor": "v_a", "likelihood": 0.25, "details": None},
        {"session": "s_b", "visitor": "v_b", "likelihood": 0.35, "details": None}]}
    rows = ui_views.candidates(call)
    assert [(c["session"], c["attached"], c["visitor_likelihood"]) for c in rows] == [
        ("s_a1", True, 0.6), ("s_a2", False, 0.6), ("s_b", False, None)]
    assert rows[0]["timeline"] == [(100.0, "landed (3 pageviews in all)"),
                                   (300.0, "clicked to call"), (400.0, "last activity")]
    assert rows[1]["timeline"] == []
    assert ui_views.campaign(details) == [("utm_source", "g"), ("gclid", "x")]


@pytest.mark.parametrize(("value", "kind", "shown"), [
    (0.0123, "percent", "1.2%"), (1800, "seconds", "30.0 min"), (12.345, "float", "12.35"),
    (1234, "int", "1,234"), (None, "int", "-"), ("n/a", "float", "n/a"),
    (9, "hour", "09:00-10:00 UTC"), (23, "hour", "23:00-00:00 UTC"), ([], "numbers", "none"),
    (["+14155550199"], "numbers", "(415) 555-0199"),
    ({"+14155550199": 3, "+14155550198": 0}, "numbers", "(415) 555-0199: 3, (415) 555-0198: 0"),
])
def test_report_figures_are_formatted_by_kind(value: object, kind: str, shown: str) -> None:
    assert ui_views.figure(value, kind) == shown


def test_pool_change_reads_as_words() -> None:
    assert [ui_views.change_text(c) for c in (2, -1, 0, None)] == [
        "+2 numbers", "-1 number", "no change", "no change"]


def test_report_period_defaults_to_the_last_week() -> None:
    now = 1764288000.0 + 3600  # 2025-11-28 01:00 UTC
    assert ui_views.report_period({}, now) == (now - 3600 - 6 * 86400, now - 3600 + 86400)
    with pytest.raises(ValueError, match="before"):
        ui_views.report_period({"from": "2025-11-10", "to": "2025-11-01"}, now)


def test_likelihood_bar_width_band_and_text() -> None:
    svg = str(ui_charts.likelihood_bar(0.634))
    assert 'class="lk-fill lk-medium" width="63.4"' in svg and ">63%<" in svg
    assert "no match" in ui_charts.likelihood_bar(None)
    assert 'width="100"' in str(ui_charts.likelihood_bar(7.0))  # clamped


def test_hour_chart_draws_24_bars_and_the_pool_line() -> None:
    values = [float(h % 5) for h in range(24)]
    root = parse_svg(ui_charts.reserved_by_hour(values, 4, "Google Ads"))
    assert root.get("role") == "img"
    assert len(root.findall(f"{SVG}rect")) == 24
    ref = root.find(f"{SVG}line[@class='ref']")
    assert ref is not None and ref.get("y1") == ref.get("y2")
    heights = [float(r.get("height", "0")) for r in root.findall(f"{SVG}rect")]
    assert heights[4] > heights[1] > heights[0] == 0


def test_chart_text_is_escaped() -> None:
    markup = str(ui_charts.likelihood_histogram([1] * 10, '<img src=x onerror="x()">'))
    assert "<img" not in markup and "&lt;img" in markup
    parse_svg(markup)  # still well-formed


def test_pool_bar_segments_add_up() -> None:
    root = parse_svg(ui_charts.pool_bar(1, 2, 1))
    widths = [float(r.get("width", "0")) for r in root.findall(f"{SVG}rect")]
    assert widths == [25.0, 50.0, 25.0]


def test_source_rules_read_as_conditions() -> None:
    config = parse_config({"sites": [{"key": "a", "name": "A", "swap_targets": ["+18005550100"],
                                      "sources": [
        {"name": "Paid", "kind": "online", "forward_to": "+18005550100",
         "numbers": ["+14155550101"],
         "match": [{"gclid": True}, {"utm_source": ["google", "bing"], "utm_medium": "cpc"}]},
        {"name": "Google Organic", "kind": "online", "forward_to": "+18005550100",
         "numbers": ["+14155550102"]}]}]})
    paid, organic = config.sites[0].sources
    assert ui_views.rules_text(paid) == ["gclid", "utm_source = google | bing and utm_medium = cpc"]
    assert ui_views.rules_text(organic) == ["preset = Google Organic"]
