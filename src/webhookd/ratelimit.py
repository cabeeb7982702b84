"""Per-tenant token bucket: capacity ``rate_limit``, refilled at ``rate_limit / 60`` tokens/s.

``RateLimiter`` is the seam: the in-memory bucket here serves one process; a Redis bucket
(one atomic script per check) implements the same protocol for several API processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float  # seconds until one token is available (0 when allowed)

    @property
    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class RateLimiter(Protocol):
    async def acquire(self, key: str, limit: int) -> Decision: ...

    async def close(self) -> None: ...


def take_token(tokens: float, updated: float, now: float, limit: int) -> tuple[bool, float, float]:
    """Pure bucket step: refill since ``updated``, try to take one token.

    Returns (allowed, tokens_left, seconds_until_next_token).
    """
    rate = limit / 60.0
    tokens = min(float(limit), tokens + (now - updated) * rate)
    if tokens >= 1.0:
        return True, tokens - 1.0, 0.0
    return False, tokens, (1.0 - tokens) / rate


class MemoryRateLimiter:
    """Token buckets in this process's memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(self, key: str, limit: int) -> Decision:
        now = self._clock()
        tokens, updated = self._buckets.get(key, (float(limit), now))
        allowed, tokens, wait = take_token(tokens, updated, now, limit)
        self._buckets[key] = (tokens, now)
        return Decision(allowed, limit, int(tokens), wait)

    async def close(self) -> None:
        self._buckets.clear()
