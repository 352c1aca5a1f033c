"""Oversized and slow HTTP requests over raw loopback sockets: every one is answered or cut off
within a bound, and the gateway keeps serving everybody else meanwhile.

- a body over DNI_MAX_BODY_BYTES: 413 as soon as the limit is crossed (declared or chunked);
- a header line, a request line or a header count over aiohttp's limits: 400;
- headers trickled a byte at a time (slowloris), or nothing sent at all: the connection is
  closed after DNI_HTTP_IDLE_TIMEOUT, checked against `dni-gateway serve` itself (the wiring
  of the setting into web.run_app);
- a body trickled after complete headers: 408 after `validate.BODY_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import HTTP_IDLE_TIMEOUT_S, Settings, from_env
from gateway.web import validate
from tests.conftest import ADMIN_KEY, DEMO_CONFIG, Gateway, start_gateway
from tests.resilience.conftest import address, exchange, status_of

MAX_BODY = 64 * 1024  # a small DNI_MAX_BODY_BYTES keeps the oversized bodies quick to send
ANSWER_BUDGET_S = 2.0  # the 413/400/408 arrives within this of the offending byte
IDLE_TIMEOUT_S = 2.0  # DNI_HTTP_IDLE_TIMEOUT of the served gateway below
CUT_SLACK_S = 1.5  # the event loop's timer granularity and a busy machine
TRICKLE_S = 0.1  # one byte per this long: a slowloris (real ones wait longer)
SLOW_CLIENTS = 50  # concurrent slowloris connections while a normal client is served
JSON = b"application/json"


@pytest.fixture
async def small_gateway(settings: Settings, loop_errors: list[Any]) -> AsyncIterator[Gateway]:
    gw = await start_gateway(replace(settings, max_body_bytes=MAX_BODY))
    await gw.import_config(DEMO_CONFIG)
    yield gw
    await gw.client.close()


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gw", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def first_status(gw: Gateway, chunks: list[bytes]) -> tuple[int, float, bytes]:
    """Send `chunks`, read until the first response's head is in; (status, seconds, head)."""
    reader, writer = await asyncio.open_connection(*address(gw))
    started = time.monotonic()
    try:
        for chunk in chunks:
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionResetError:
                break  # refused mid-body: the answer may already be waiting
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_BUDGET_S * 2)
    finally:
        writer.close()
    return status_of(head), time.monotonic() - started, head


OVERSIZED = [
    ("POST", "/v1/swap", {"Content-Type": "text/plain"}),
    ("POST", "/v1/sessions/s_x/events", {"Content-Type": "application/json"}),
    ("POST", "/v1/import", {"Content-Type": "application/json",
                            "Authorization": f"Bearer {ADMIN_KEY}"}),
    ("POST", "/v1/import", {"Content-Type": "application/toml",
                            "Authorization": f"Bearer {ADMIN_KEY}"}),
    ("POST", "/v1/voice/twilio", {"Content-Type": "application/x-www-form-urlencoded"}),
    ("POST", "/ui/signin", {"Content-Type": "application/x-www-form-urlencoded",
                            "Origin": "http://gw"}),
]


@pytest.mark.parametrize(("method", "path", "headers"), OVERSIZED)
async def test_a_body_over_the_limit_is_413_at_once(small_gateway: Gateway, method: str,
                                                    path: str, headers: dict[str, str]) -> None:
    # Declared as 1 GB; only a little past the limit is ever sent.
    head = request(method, path, {**headers, "Content-Length": str(10**9)})
    status, took, raw = await first_status(small_gateway, [head, b"a" * (MAX_BODY + 1024)])
    assert status == 413, raw
    assert took < ANSWER_BUDGET_S
    # Chunked, with no length at all: refused when the limit is crossed too.
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"a" * 16 * 1024)
    head = request(method, path, {**headers, "Transfer-Encoding": "chunked"})
    status, took, raw = await first_status(small_gateway, [head, *[chunk] * 6])
    assert status == 413, raw
    assert took < ANSWER_BUDGET_S


async def test_a_body_at_the_limit_is_read(small_gateway: Gateway) -> None:
    """The limit is the setting, not less: a JSON body of exactly MAX_BODY bytes is parsed."""
    body = b'{"site": "acme", "url": "https://acme.test/", "pad": "'
    body += b"p" * (MAX_BODY - len(body) - 2) + b'"}'
    assert len(body) == MAX_BODY
    head = request("POST", "/v1/swap", {"Content-Length": str(len(body)), "Connection": "close"})
    assert status_of(await exchange(small_gateway, [head + body])) == 200


@pytest.mark.parametrize(("what", "raw"), [
    ("a header line over 8190 bytes",
     b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"),
    ("more than 128 headers",
     b"GET /healthz HTTP/1.1\r\nHost: gw\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200))
     + b"\r\n"),
    ("a request line over 8190 bytes",
     b"GET /healthz?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n"),
    ("a header of 100 KB sent in one go",
     b"GET /healthz HTTP/1.1\r\nHost: gw\r\nCookie: " + b"c" * 100_000 + b"\r\n\r\n"),
    ("a NUL in a header value", b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-A: a\x00b\r\n\r\n"),
    ("raw non-ASCII bytes in the path", b"GET /v1/calls/\xff\xfe HTTP/1.1\r\nHost: gw\r\n\r\n"),
])
async def test_oversized_or_malformed_heads_are_400(gateway: Gateway, what: str,
                                                    raw: bytes) -> None:
    started = time.monotonic()
    answer = await exchange(gateway, [raw], timeout=ANSWER_BUDGET_S * 2)
    assert status_of(answer) in {400, 414, 431}, (what, answer[:200])
    assert time.monotonic() - started < ANSWER_BUDGET_S, what
    # The gateway is still there for the next client.
    assert (await gateway.client.get("/healthz")).status == 200


async def test_a_trickled_body_gets_408(small_gateway: Gateway,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "BODY_TIMEOUT_S", 0.5)
    reader, writer = await asyncio.open_connection(*address(small_gateway))
    started = time.monotonic()
    try:
        writer.write(request("POST", "/v1/swap", {"Content-Length": "100"}) + b'{"site"')
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_BUDGET_S * 2)
    finally:
        writer.close()
    assert status_of(head) == 408
    assert time.monotonic() - started < 0.5 + ANSWER_BUDGET_S


def test_the_idle_timeout_is_a_setting() -> None:
    assert from_env({}).http_idle_timeout_s == HTTP_IDLE_TIMEOUT_S == 75.0
    assert from_env({"DNI_HTTP_IDLE_TIMEOUT": "5"}).http_idle_timeout_s == 5.0


# -- against `dni-gateway serve` ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[int]:
    """`dni-gateway serve` as operators run it (web.run_app), idle timeout 2 s; its port."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "DNI_DATA_DIR": str(tmp_path / "data"),
           "DNI_PORT": str(port), "DNI_ADMIN_KEY": ADMIN_KEY,
           "DNI_HTTP_IDLE_TIMEOUT": str(IDLE_TIMEOUT_S)}
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # up to 30 s for the database and the engine
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def trickle(port: int, payload: bytes, limit_s: float) -> tuple[float, int]:
    """Send `payload` a byte per TRICKLE_S until the server closes or `limit_s` passes;
    (seconds until closed or the limit, bytes sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    sent = 0
    try:
        while sent < len(payload) and time.monotonic() - started < limit_s:
            try:
                writer.write(payload[sent:sent + 1])
                await writer.drain()
            except ConnectionError:
                break
            sent += 1
            try:
                if await asyncio.wait_for(reader.read(1024), TRICKLE_S) == b"":
                    break  # closed by the server
            except TimeoutError:
                continue
            except ConnectionError:
                break
    finally:
        writer.close()
    return time.monotonic() - started, sent


async def test_slowloris_is_cut_off_and_others_are_served(served: int) -> None:
    endless = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n" + b"X-Slow: " + b"s" * 10_000
    limit = IDLE_TIMEOUT_S + CUT_SLACK_S
    slow = [asyncio.ensure_future(trickle(served, endless, limit * 2))
            for _ in range(SLOW_CLIENTS)]
    try:
        await asyncio.sleep(0.3)  # every slow client is connected and trickling
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", served)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), ANSWER_BUDGET_S)
        writer.close()
        assert status_of(answer) == 200 and time.monotonic() - started < ANSWER_BUDGET_S
    finally:
        results = await asyncio.gather(*slow)
    for seconds, sent in results:
        assert seconds < limit, f"a slowloris kept its connection {seconds:.1f} s"
        assert sent < len(endless)


async def test_a_silent_connection_is_closed(served: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), IDLE_TIMEOUT_S + CUT_SLACK_S)
    finally:
        writer.close()
    assert data == b""  # closed without a word
    assert IDLE_TIMEOUT_S - 0.5 < time.monotonic() - started < IDLE_TIMEOUT_S + CUT_SLACK_S
