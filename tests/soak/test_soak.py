"""The short version of bench/soak.py (the long run is `python -m bench.soak`): a real gateway
process under mixed load through PostgreSQL going down, a SIGKILL, an unwritable spool and a
slow database, then a check that nothing was lost."""

from __future__ import annotations

import io

import pytest

from bench.soak import CALL_BUDGET_S, soak

PHASE_S = 3.0  # each phase; the bench default is 120 s
RATE = 20  # operations per second: swaps, events, webhook calls and SIP INVITEs


@pytest.mark.slow
async def test_nothing_is_lost_through_faults() -> None:
    out = io.StringIO()
    report = await soak(PHASE_S, RATE, out, warmup_s=0.5)
    phases, final = report["phases"], report["final"]
    assert phases["steady"]["errors"] == 0, out.getvalue()  # SIP INVITEs unanswered included
    memory = phases["memory"]
    assert memory["rss_samples"] >= 2 and memory["sessions_added"] > 0, out.getvalue()
    assert phases["pg-down"]["errors"] == 0, out.getvalue()  # answered with the db down
    assert phases["pg-down"]["drained_after"] is True
    kill = phases["kill"]
    assert kill["visitors_kept_number"] == kill["visitors_checked"] > 0, out.getvalue()
    spool = phases["spool-bad"]
    assert spool["errors"] == 0 and spool["calls_forwarded"] > 0, out.getvalue()
    assert spool["spool_errors"] > 0 and spool["logged"] is True
    slow = phases["slow-db"]
    assert slow["errors"] == 0 and slow["call_p99_ms"] < CALL_BUDGET_S * 1000, out.getvalue()
    assert final["visits_missing"] == 0, out.getvalue()
    assert final["calls_missing_count"] == 0, out.getvalue()
    assert final["duplicate_events"] == 0
    assert final["writer_drained"] is True
