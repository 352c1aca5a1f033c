"""Hostile-input and security tests: shared helpers.

Every test here has a short version that runs in the default suite. Long runs of the same
tests (many more generated examples) carry the `resilience` marker and run only when it is
selected (`pytest -m resilience tests/resilience`); otherwise they are skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from gateway.settings import Settings
from gateway.web.keys import STATE
from tests.conftest import DEMO_CONFIG, Gateway, start_gateway
from tests.sip_e2e.conftest import peer_factory, sip_gateway  # noqa: F401 - shared fixtures

SOCKET_TIMEOUT_S = 5.0  # any single read from the gateway; a hang fails the test, never stalls
# Short runs (the default suite) are derandomized: the same examples on every run and in CI.
# Long runs (-m resilience) draw fresh examples each time to find what the short ones miss.
SHORT_EXAMPLES_MAX = 200


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "resilience" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="long run: select it with -m resilience")
    for item in items:
        if item.get_closest_marker("resilience") is not None:
            item.add_marker(skip)


@pytest.fixture
async def open_gateway(settings: Settings, loop_errors: list[Any]) -> AsyncIterator[Gateway]:
    """The demo gateway without the per-client swap rate limit, so that every generated
    request from this one loopback client reaches the engine and the writer."""
    gw = await start_gateway(replace(settings, swap_rate_per_minute=1_000_000))
    await gw.import_config(DEMO_CONFIG)
    yield gw
    await gw.client.close()


def properties(max_examples: int, *, shrink: bool = True) -> settings:
    """Hypothesis settings for property tests against a running gateway: one gateway (a
    function-scoped fixture) serves every example; no example database, so a run is the same
    on every machine; no per-example deadline (the bounds asserted are the tests' own).
    `shrink=False` for properties whose failure outlives the example (a stuck writer fails
    every later example too, so shrinking would only take long and mislead)."""
    phases = list(Phase) if shrink else [p for p in Phase if p is not Phase.shrink]
    return settings(max_examples=max_examples, deadline=None, database=None,
                    derandomize=max_examples <= SHORT_EXAMPLES_MAX, phases=phases,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


def address(gw: Gateway) -> tuple[str, int]:
    return str(gw.server.host), int(gw.server.port or 0)


async def exchange(gw: Gateway, chunks: Iterable[bytes], *,
                   timeout: float = SOCKET_TIMEOUT_S) -> bytes:
    """Send raw bytes on a fresh loopback connection; everything the gateway answers until it
    closes (or `timeout` passes)."""
    reader, writer = await asyncio.open_connection(*address(gw))
    try:
        for chunk in chunks:
            writer.write(chunk)
        await writer.drain()
        return await read_until_closed(reader, timeout)
    finally:
        writer.close()


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


def status_of(raw: bytes) -> int:
    """The status code of the first response in `raw` (0 when there is none)."""
    head = raw.split(b"\r\n", 1)[0].split()
    return int(head[1]) if len(head) >= 2 and head[1].isdigit() else 0


async def settle_writer(gw: Any, within_s: float) -> Any:
    """Kick the gateway's writer and wait (bounded) until its queue is empty; the writer."""
    writer = gw.app[STATE].writer
    assert writer is not None
    writer.kick()
    deadline = time.monotonic() + within_s
    while writer.depth and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll
        await asyncio.sleep(0.02)
    return writer
