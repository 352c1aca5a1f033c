"""The simulator end to end through the real engine: determinism, targets, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from scoring import simulate
from scoring.simulate import Report, Row, run_scenario
from scoring.traffic import scenario

SMALL = {"daily_visitors": 300.0, "call_rate": 0.05}


def _without_timing(report: Report) -> Report:
    rows = tuple(replace(r, call_us=0.0, visit_us=0.0) for r in report.rows)
    return replace(report, rows=rows, seconds=0.0)


def test_same_seed_same_report() -> None:
    a = run_scenario("default", (20, None), days=3, seed=4, **SMALL)
    b = run_scenario("default", (20, None), days=3, seed=4, **SMALL)
    assert _without_timing(a) == _without_timing(b)
    c = run_scenario("default", (20, None), days=3, seed=5, **SMALL)
    assert _without_timing(c) != _without_timing(a)


def test_report_figures_are_consistent() -> None:
    rep = run_scenario("default", (10, 100, None), days=4, seed=2, **SMALL)
    by = {r.ratio: r for r in rep.rows}
    assert rep.visitors > 1000
    assert by[10].numbers > by[100].numbers
    for r in rep.rows:
        assert r.calls > 30
        assert 0.0 <= r.accuracy <= 1.0
        assert 0.0 <= r.ece <= 1.0
        assert r.soon_calls <= r.calls
    unlimited = by[None]
    assert unlimited.shared_visitors == 0.0
    assert unlimited.accuracy >= by[100].accuracy
    assert by[100].shared_visitors > by[10].shared_visitors


def test_engine_beats_last_visitor_shown_on_crowded_pools() -> None:
    rep = run_scenario("default", 60, days=7, seed=3, **SMALL)
    row: Row = rep.rows[0]
    assert row.accuracy >= row.last_shown - 0.005
    assert row.bayes >= row.accuracy - 0.05


def test_main_prints_the_table_and_writes_json(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    code = simulate.main(["--days", "2", "--visitors", "200", "--ratio", "20", "--quiet",
                          "--json", str(out), "--scenario", "mobile-heavy"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "scenario mobile-heavy" in printed
    assert "unlimited" in printed
    data = json.loads(out.read_text())
    assert data[0]["scenario"] == "mobile-heavy"
    assert [r["ratio"] for r in data[0]["rows"]] == [20, None]


def test_main_plot_is_optional(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "acc.png"
    assert simulate.main(["--days", "1", "--visitors", "100", "--ratio", "20", "--quiet",
                          "--no-unlimited", "--plot", str(png)]) == 0
    err = capsys.readouterr().err
    assert png.exists() or "matplotlib is not installed" in err


def test_progress_goes_to_the_callback() -> None:
    lines: list[str] = []
    run_scenario("desktop-short", 20, days=1, seed=1, progress=lines.append, daily_visitors=100)
    assert lines
    assert lines[-1].startswith("[1/1] desktop-short 1/20")


def test_wilson_interval() -> None:
    """The textbook values (Wilson 1927; e.g. 50 of 100 -> 40.4%-59.6%), and the ends."""
    assert simulate.wilson(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    lo, hi = simulate.wilson(0.97, 700)
    assert lo == pytest.approx(0.9546, abs=1e-4) and hi == pytest.approx(0.9803, abs=1e-4)
    assert simulate.wilson(1.0, 10)[1] == 1.0 and simulate.wilson(0.0, 10)[0] == 0.0
    assert simulate.wilson(0.9, 0) == (0.0, 1.0)


def test_the_report_says_what_the_accuracy_reports_sizing_would() -> None:
    """Each source's pool at each ratio is sized as the accuracy report sizes stored traffic:
    the same recommendation whatever the pool (it depends on the traffic alone), "more
    numbers" exactly where the pool is below it, and the table says so."""
    report = run_scenario("default", [10, 100], days=3, seed=2)
    sources = [s.name for s in scenario("default").sources]
    assert [(a.ratio, a.source) for a in report.sizing] == [
        (r, name) for r in (10, 100) for name in sources]
    for name in sources:
        ten, hundred = (a for a in report.sizing if a.source == name)
        assert ten.recommended == hundred.recommended > 0
        assert hundred.pool < ten.pool and hundred.peak_sharing > ten.peak_sharing
        for a in (ten, hundred):
            assert (a.verdict == "more numbers") == (a.pool < a.recommended)
    assert "accuracy report's sizing of Google Ads (Erlang B, 2% target): 1/10 50 -> " \
        in report.table()
