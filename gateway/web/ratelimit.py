"""A per-client token bucket with bounded memory (clients are keyed by address)."""

from __future__ import annotations

import time

MAX_CLIENTS = 100_000  # bounded memory under a spray of addresses; ~10 MB at this size


class RateLimiter:
    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, per_minute // 4))
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) >= MAX_CLIENTS and client not in self._buckets:
            self._prune(now)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1.0, now)
        return True

    def _prune(self, now: float) -> None:
        """Forget clients whose bucket has refilled (they lose nothing by being forgotten)."""
        full = self.burst / self.rate if self.rate else 0.0
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
        if len(self._buckets) >= MAX_CLIENTS:
            self._buckets.clear()
