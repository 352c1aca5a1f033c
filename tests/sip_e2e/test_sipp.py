"""End to end with a real SIP peer: SIPp (Debian's sip-tester) as the trunk, and sipvicious's
svmap/svwar as a scanner from outside the allowlist."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.sip_e2e.conftest import TRUNK, invite, sip_port
from tests.web.test_swap import swap, wait_for

DATA = Path(__file__).parents[1] / "data" / "sipp"
SIPP_TIMEOUT_S = 30

pytestmark = [pytest.mark.sipp,
              pytest.mark.skipif(shutil.which("sipp") is None, reason="SIPp not installed")]


async def sipp(scenario: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["sipp", "-sf", str(scenario), "-i", TRUNK, "-nostdin", "-timeout",
           f"{SIPP_TIMEOUT_S}s", "-timeout_error", *args, f"127.0.0.1:{port}"]
    return await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True,
                                   timeout=SIPP_TIMEOUT_S + 10, check=False)


def scenario(tmp_path: Path, forward_digits: str) -> Path:
    text = (DATA / "invite_302.xml").read_text().replace("{forward_digits}", forward_digits)
    path = tmp_path / "invite_302.xml"
    path.write_text(text)
    return path


async def test_sipp_calls_are_redirected_and_attributed(sip_gateway: Gateway, tmp_path: Path,
                                                        db_url: str) -> None:
    visitors = [await swap(sip_gateway) for _ in range(2)]
    calls = tmp_path / "calls.csv"
    calls.write_text("SEQUENTIAL\n" + "".join(f"{v['number']};+1415555{i:04d};\n"
                                              for i, v in enumerate(visitors)))
    done = await sipp(scenario(tmp_path, "18005550100"), sip_port(sip_gateway),
                      "-inf", str(calls), "-m", "2", "-r", "10")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = await wait_for(db_url, "SELECT count(*) FROM calls WHERE carrier = 'sip'", 2)
    assert rows == 2
    sessions = await wait_for(db_url, "SELECT array_agg(session ORDER BY session) FROM calls",
                              sorted(v["session"] for v in visitors))
    assert sessions == sorted(v["session"] for v in visitors)


async def test_sipp_wrong_contact_fails_the_call(sip_gateway: Gateway, tmp_path: Path) -> None:
    """The scenario's Contact check is real: expecting another number makes SIPp fail."""
    calls = tmp_path / "calls.csv"
    calls.write_text("SEQUENTIAL\n+14155550199;+14155559999;\n")
    done = await sipp(scenario(tmp_path, "19999999999"), sip_port(sip_gateway),
                      "-inf", str(calls), "-m", "1")
    assert done.returncode != 0


async def test_sipp_options_probe(sip_gateway: Gateway) -> None:
    done = await sipp(DATA / "options.xml", sip_port(sip_gateway), "-m", "3")
    assert done.returncode == 0, done.stdout[-2000:]


@pytest.mark.skipif(shutil.which("svwar") is None, reason="sipvicious not installed")
async def test_scanners_outside_the_allowlist_find_no_numbers(sip_gateway: Gateway,
                                                               peer_factory: Any) -> None:
    port = sip_port(sip_gateway)
    svwar = await asyncio.to_thread(
        subprocess.run, ["svwar", "--force", "-e", "14155550190-14155550210", "-m", "INVITE",
                         "-p", str(port), "127.0.0.1"],
        capture_output=True, text=True, timeout=120, check=False)
    out = svwar.stdout + svwar.stderr
    assert "14155550199" not in out and "14155550101" not in out, out[-3000:]
    svmap = await asyncio.to_thread(
        subprocess.run, ["svmap", "-p", str(port), "127.0.0.1"], capture_output=True,
        text=True, timeout=60, check=False)
    assert "dni" not in (svmap.stdout + svmap.stderr).lower()  # no product fingerprint
    peer = peer_factory(port)
    peer.send(invite("+14155550199", call_id="after-scan"))
    final = await asyncio.to_thread(peer.recv_final, 2.0)
    assert final is not None and final.status == 302  # the trunk is still served
