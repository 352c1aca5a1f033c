"""Erlang B against published tables and hand-computed values."""

from __future__ import annotations

import pytest

from scoring.erlang import ErlangError, erlang_b, mean_concurrency, offered_load, servers_for


@pytest.mark.parametrize(
    ("load", "target", "servers"),
    [
        (10.0, 0.01, 18),  # published: 10 erlangs at 1% -> 18 lines
        (100.0, 0.01, 117),  # published: 100 erlangs at 1% -> 117 lines
        (1.0, 0.01, 5),  # B(5, 1) = 0.0031, B(4, 1) = 0.0154
        (5.0, 0.02, 10),  # standard table: 5 E at 2% -> 10 lines
        (20.0, 0.05, 26),  # standard table: 20 E at 5% -> 26 lines
    ],
)
def test_servers_for_matches_published_tables(load: float, target: float, servers: int) -> None:
    assert servers_for(load, target) == servers
    assert erlang_b(servers, load) <= target < erlang_b(servers - 1, load)


@pytest.mark.parametrize(
    ("servers", "load", "blocking"),
    [(1, 1.0, 0.5), (2, 2.0, 0.4), (0, 3.0, 1.0), (3, 0.0, 0.0), (18, 10.0, 0.0071)],
)
def test_erlang_b_known_values(servers: int, load: float, blocking: float) -> None:
    assert erlang_b(servers, load) == pytest.approx(blocking, abs=5e-5)


def test_recursion_is_stable_for_large_pools() -> None:
    b = erlang_b(5000, 4500.0)  # factorials here overflow any float
    assert 0.0 < b < 0.02


def test_offered_load_is_rate_times_holding_time() -> None:
    assert offered_load(120, 900) == pytest.approx(30.0)  # 120/h held 15 min -> 30 erlangs
    assert mean_concurrency(60, 5) == pytest.approx(5.0)  # Nimbata: 60 / (60 / 5)


@pytest.mark.parametrize(
    "call",
    [lambda: erlang_b(-1, 1.0), lambda: erlang_b(1, -1.0), lambda: servers_for(1.0, 0.0),
     lambda: servers_for(float("nan"), 0.1), lambda: offered_load(-1, 1)],
)
def test_invalid_input_raises_erlang_error(call: object) -> None:
    with pytest.raises(ErlangError):
        call()  # type: ignore[operator]
