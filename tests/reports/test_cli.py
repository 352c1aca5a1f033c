"""`dni-gateway report accuracy` as a user runs it: a real process against the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from scoring import sizing
from tests.reports import sim
from tests.reports.conftest import SimDb, SimReport, online
from tests.reports.test_verdicts import TOO_SMALL

PERIOD = ["--site", "sim", "--from", "2024-01-01", "--to", "2024-01-08T00:00:00+00:00"]


def _report(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "DNI_LOG_LEVEL": "warning"}
    return subprocess.run([sys.executable, "-m", "gateway", "report", "accuracy", *args],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


async def test_the_cli_prints_a_readable_table(sim_db: SimDb, sim_report: SimReport) -> None:
    expected = online(await sim_report(TOO_SMALL))
    done = _report(await sim_db(TOO_SMALL), *PERIOD)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("accuracy report: sim, 2024-01-01 00:00 UTC to 2024-01-08 00:00 UTC "
                        "(threshold 0.9, target sharing 2% at the peak hour)")
    head, row = lines[2], lines[3]
    assert head.split()[:3] == ["source", "visitors/day", "pool"]
    cells = row.split()
    assert row.startswith("Google Ads") and cells[-3:] == ["more", "numbers",
                                                           f"+{expected['change']}"]
    assert cells[2:4] == [f"{expected['daily_visitors']:.0f}", str(TOO_SMALL)]
    assert f"{100 * expected['predicted_accuracy_now']:.1f}%" in cells
    assert f"  sim/Google Ads: {expected['reason']}" in lines
    assert lines[-1] == (f"  sim/{sim.BILLBOARD}: 3 calls ({sim.BILLBOARD_NUMBERS[0]} 3, "
                         f"{sim.BILLBOARD_NUMBERS[1]} 0); unused: {sim.BILLBOARD_NUMBERS[1]}")


async def test_the_cli_writes_json_and_csv(sim_db: SimDb, sim_report: SimReport) -> None:
    url = await sim_db(TOO_SMALL)
    done = _report(url, *PERIOD, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == await sim_report(TOO_SMALL)
    done = _report(url, *PERIOD, "--format", "csv", "--no-replay")
    header, pool, billboard = done.stdout.splitlines()
    assert header.startswith("site,source,kind,days,daily_visitors")
    assert pool.startswith("sim,Google Ads,online,") and sizing.MORE in pool
    assert billboard.startswith(f"sim,{sim.BILLBOARD},offline,")


async def test_the_cli_refuses_bad_arguments(sim_db: SimDb) -> None:
    url = await sim_db(TOO_SMALL)
    done = _report(url, "--from", "last tuesday")
    assert done.returncode == 2 and "--from: expected ISO 8601" in done.stderr
    done = _report(url, "--site", "nope", "--no-replay")
    assert done.returncode == 2 and "site: no site 'nope'" in done.stderr
    done = _report(url, *PERIOD, "--target", "1.5")
    assert done.returncode == 2 and "target:" in done.stderr
