"""The `dni-gateway` command as a user runs it: a real process on the embedded database."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import pg

SERVE_START_TIMEOUT_S = 60  # first start initialises a PostgreSQL cluster (initdb)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gateway did not become ready")


def _postgres_pids(data_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True,
                         check=False)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.slow
def test_demo_serves_and_sigterm_leaves_no_stray_processes(tmp_path: Path) -> None:
    port = _free_port()
    data = pg.pg_dir("cli")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DNI_DATA_DIR=str(data), DNI_PORT=str(port), DNI_LOG_FORMAT="json")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--demo"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        assert _postgres_pids(data), "embedded postgres should be running"
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/swap", method="POST",
            data=b'{"site": "demo", "url": "https://demo.test/?gclid=abc", "referrer": null}',
            headers={"Content-Type": "application/json", "User-Agent": "Mozilla/5.0 test"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["number"].startswith("+1415555010")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "admin key (generated" in out.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    time.sleep(0.5)
    assert _postgres_pids(data) == []


def test_bad_config_file_is_refused_naming_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "sites.toml"
    bad.write_text('[[sites]]\nkey = "a"\nname = "A"\nswap_targets = ["+18005550100"]\n'
                   '[[sites.sources]]\nname = "X"\nkind = "online"\n'
                   'forward_to = "+18005550100"\nnumbers = ["+1415555"]\n')
    out = subprocess.run([sys.executable, "-m", "gateway", "check-config", str(bad)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "sites[0].sources[0].numbers[0]" in out.stderr
    env = {**os.environ, "DNI_DATA_DIR": str(tmp_path / "d"), "DNI_PORT": "0"}
    out = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(bad)],
                         capture_output=True, text=True, check=False, env=env, timeout=60)
    assert out.returncode == 2 and "numbers[0]" in out.stderr
    assert not (tmp_path / "d" / "pg").exists()  # refused before anything started


def test_bad_setting_is_refused_naming_the_variable() -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "migrate"], capture_output=True,
                         text=True, check=False, env={**os.environ, "DNI_PORT": "x"})
    assert out.returncode == 2 and "DNI_PORT" in out.stderr


def test_simulate_runs_as_a_subcommand_with_its_own_options() -> None:
    out = subprocess.run([sys.executable, "-m", "gateway", "simulate", "--scenario",
                          "desktop-short", "--days", "1", "--visitors", "100", "--ratio", "20",
                          "--no-unlimited", "--quiet", "--profile", "auto"],
                         capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "scenario desktop-short: 1 days" in out.stdout
    assert "scoring profile desktop-short" in out.stdout
    assert "1/20" in out.stdout
    out = subprocess.run([sys.executable, "-m", "gateway", "simulate", "--profile", "b2b"],
                         capture_output=True, text=True, check=False, timeout=60)
    assert out.returncode == 2 and "--profile" in out.stderr
