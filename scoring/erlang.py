"""Pool sizing with Erlang B.

A pool of tracking numbers is a loss system: numbers are servers, reservations (a session holding
a number) are calls, and a visitor who finds every number reserved has to share one. Erlang B
gives the probability of that for an offered load `a` (erlangs = arrival rate x mean reservation
time). It is exact for any reservation-time distribution (insensitivity) and needs Poisson
arrivals, which holds within an hour. The accuracy report (issue 7) builds its advice on these
functions; sharing is not the same as misattribution, so it measures both.
"""

from __future__ import annotations

import math

MAX_SERVERS = 1_000_000  # search bound for servers_for: far past any real pool


class ErlangError(ValueError):
    """Invalid input to a pool-sizing function; the message names the argument."""


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of `servers` numbers offered `load` erlangs.

    Uses the numerically stable recursion B(0) = 1, B(n) = a B(n-1) / (n + a B(n-1)), which never
    forms the factorials of the textbook formula.
    """
    _check_load(load)
    if servers < 0:
        raise ErlangError(f"servers must be >= 0, got {servers}")
    blocking = 1.0
    for n in range(1, servers + 1):
        blocking = load * blocking / (n + load * blocking)
    return blocking


def servers_for(load: float, target_blocking: float) -> int:
    """The smallest number of servers whose blocking is at most `target_blocking`."""
    _check_load(load)
    if not 0.0 < target_blocking <= 1.0:
        raise ErlangError(f"target_blocking must be in (0, 1], got {target_blocking}")
    blocking = 1.0
    n = 0
    while blocking > target_blocking:
        n += 1
        if n > MAX_SERVERS:
            raise ErlangError(f"load {load} needs more than {MAX_SERVERS} servers")
        blocking = load * blocking / (n + load * blocking)
    return n


def offered_load(arrivals_per_hour: float, mean_reservation_s: float) -> float:
    """Offered load in erlangs: arrival rate x mean reservation (holding) time."""
    if arrivals_per_hour < 0 or not math.isfinite(arrivals_per_hour):
        raise ErlangError(f"arrivals_per_hour must be finite and >= 0, got {arrivals_per_hour}")
    if mean_reservation_s < 0 or not math.isfinite(mean_reservation_s):
        raise ErlangError(f"mean_reservation_s must be finite and >= 0, got {mean_reservation_s}")
    return arrivals_per_hour * mean_reservation_s / 3600.0


def mean_concurrency(peak_hour_sessions: float, session_minutes: float) -> float:
    """Nimbata's field rule: peak hourly users / (60 / session minutes). Equals offered load."""
    return offered_load(peak_hour_sessions, session_minutes * 60.0)


def _check_load(load: float) -> None:
    if load < 0 or not math.isfinite(load):
        raise ErlangError(f"load must be finite and >= 0, got {load}")
