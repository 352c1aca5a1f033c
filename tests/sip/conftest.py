"""Shared helpers for the SIP tests: captured messages and a virtual clock driver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.sip.transaction import Output, TransactionLayer

DATA = Path(__file__).resolve().parent.parent / "data" / "sip"
TRUNK = ("198.51.100.20", 5060)
TAG = "7d3f0a9c21b4e865"  # the To tag ack.sip carries, so the fake tag factory returns it


def load(name: str) -> bytes:
    """The bytes of tests/data/sip/<name>.sip."""
    return (DATA / f"{name}.sip").read_bytes()


def run_timers(layer: TransactionLayer, until: float) -> list[tuple[float, Output]]:
    """Advance virtual time to `until`, firing each deadline exactly when it falls due."""
    fired: list[tuple[float, Output]] = []
    while (deadline := layer.next_deadline()) is not None and deadline <= until:
        fired.extend((deadline, out) for out in layer.on_timer(deadline))
    return fired


@pytest.fixture
def layer() -> TransactionLayer:
    """A layer whose To tags are predictable."""
    return TransactionLayer(tag_factory=lambda: TAG)


@pytest.fixture
def message() -> Callable[[str], bytes]:
    """Load a captured message by name."""
    return load
