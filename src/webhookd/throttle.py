"""Brute-force guard for authentication: failures per client address, in this process."""

from __future__ import annotations

import time
from collections.abc import Callable

from webhookd.ratelimit import refill


class FailureThrottle:
    """Brute-force guard: each client address may fail authentication ``per_minute`` times
    (a token bucket of failures); once it is empty every attempt from that address gets 429
    until a token refills. In memory, per process."""

    MAX_CLIENTS = 100_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def _state(self, client: str, now: float) -> tuple[float, float]:
        tokens, updated = self._buckets.get(client, (float(self.per_minute), now))
        rate = self.per_minute / 60.0
        return refill(tokens, updated, now, float(self.per_minute), rate), rate

    def blocked_for(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: it may now)."""
        tokens, rate = self._state(client, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate

    def record_failure(self, client: str) -> None:
        now = self._clock()
        tokens, _ = self._state(client, now)
        if len(self._buckets) >= self.MAX_CLIENTS and client not in self._buckets:
            self._buckets.clear()  # bounded memory; worst case an attacker gets a fresh start
        self._buckets[client] = (max(0.0, tokens - 1.0), now)
