"""The naive allocator that open-source DNI servers use, simulated for comparison.

Each page load asks for a number: the session keeps its lease if it is still valid, otherwise it
gets a random free number of the source's pool; a lease lapses after 5 minutes without a page
load or 15 minutes after it was taken. When no number is free, a random one is shown anyway
(shared). A call is credited to the last visitor shown the dialled number. Nothing is sticky
and nothing is scored. Kept apart from the engine on purpose: it is the baseline, not a design.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

LEASE_IDLE_S = 300.0  # issue 6: lease of 5 minutes idle ...
LEASE_TOTAL_S = 900.0  # ... and 15 minutes total


@dataclass(slots=True)
class _Lease:
    session: int
    taken: float
    touched: float

    def expiry(self) -> float:
        return min(self.touched + LEASE_IDLE_S, self.taken + LEASE_TOTAL_S)


class NaivePool:
    """One source's pool under the naive design."""

    def __init__(self, numbers: list[str], rng: random.Random) -> None:
        self.free = list(numbers)
        self.numbers = numbers
        self.rng = rng
        self.leases: dict[str, _Lease] = {}
        self.expiries: list[tuple[float, str]] = []  # lazy heap; stale entries are skipped

    def page(self, session: int, current: str | None, at: float) -> str:
        """The number a page load of `session` shows (`current`: what its last page showed)."""
        self._expire(at)
        lease = self.leases.get(current) if current is not None else None
        if current is not None and lease is not None and lease.session == session:
            lease.touched = at
            heapq.heappush(self.expiries, (lease.expiry(), current))
            return current
        if not self.free:
            return self.rng.choice(self.numbers)
        i = self.rng.randrange(len(self.free))
        self.free[i], self.free[-1] = self.free[-1], self.free[i]
        number = self.free.pop()
        self.leases[number] = lease = _Lease(session, at, at)
        heapq.heappush(self.expiries, (lease.expiry(), number))
        return number

    def _expire(self, at: float) -> None:
        while self.expiries and self.expiries[0][0] <= at:
            _, number = heapq.heappop(self.expiries)
            lease = self.leases.get(number)
            if lease is not None and lease.expiry() <= at:
                del self.leases[number]
                self.free.append(number)
