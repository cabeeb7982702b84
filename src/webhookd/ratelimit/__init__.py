"""Token buckets: per tenant (publishes) and per endpoint (deliveries).

Tenant buckets hold ``rate_limit`` tokens, refilled at ``rate_limit / 60`` tokens/s; endpoint
buckets hold ``endpoint_burst(rate)`` tokens, refilled at ``rate`` tokens/s. ``RateLimiter``
and ``EndpointLimiter`` are the seams: the in-memory buckets here serve one process; the Redis
ones (``redis_buckets``: one shared atomic script per round trip) serve every process alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from webhookd.config import Settings


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


class EndpointLimiter(Protocol):
    async def take(self, key: str, rate: float) -> float:
        """Take a token from ``key``'s bucket (``rate`` per second): 0.0 when one was taken,
        else the seconds until one will be available (> 0)."""
        ...

    async def close(self) -> None: ...


def refill(tokens: float, updated: float, now: float, capacity: float, rate: float) -> float:
    """Pure bucket step: the tokens of a bucket of ``capacity`` refilled at ``rate`` per
    second since ``updated``."""
    return min(capacity, tokens + (now - updated) * rate)


def take_tokens(
    tokens: float, updated: float, now: float, capacity: float, rate: float
) -> tuple[bool, float, float]:
    """Pure bucket step: refill since ``updated`` (capped at ``capacity``), try to take one
    token. Returns (allowed, tokens_left, seconds_until_next_token)."""
    tokens = refill(tokens, updated, now, capacity, rate)
    if tokens >= 1.0:
        return True, tokens - 1.0, 0.0
    return False, tokens, (1.0 - tokens) / rate


def take_token(tokens: float, updated: float, now: float, limit: int) -> tuple[bool, float, float]:
    """Pure bucket step of a per-minute limit: ``take_tokens`` with capacity ``limit`` and
    ``limit / 60`` tokens/s. Returns (allowed, tokens_left, seconds_until_next_token)."""
    return take_tokens(tokens, updated, now, float(limit), limit / 60.0)


def endpoint_burst(rate: float) -> float:
    """Capacity of an endpoint's bucket at ``rate`` deliveries/s: 5 % of the rate, at least
    one, so any 1-second window lets through at most ``rate + endpoint_burst(rate)``."""
    return max(1.0, rate * 0.05)


def check_rate(rate: float) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number of deliveries per second, not {rate!r}")


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


class MemoryEndpointLimiter:
    """Endpoint token buckets in this process's memory. A bucket follows the rate of its
    latest take (tokens above the new capacity are dropped)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str, rate: float) -> float:
        return self.take_now(key, rate)

    def take_now(self, key: str, rate: float) -> float:
        """``take`` without the coroutine."""
        check_rate(rate)
        capacity = endpoint_burst(rate)
        now = self._clock()
        tokens, updated = self._buckets.get(key, (capacity, now))
        allowed, tokens, wait = take_tokens(tokens, updated, now, capacity, rate)
        self._buckets[key] = (tokens, now)
        return 0.0 if allowed else wait

    async def close(self) -> None:
        self._buckets.clear()


def create_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis buckets shared by every process when ``redis_url`` is set, else in-memory ones."""
    if settings.redis_url:
        from webhookd.ratelimit.redis_buckets import RedisRateLimiter

        return RedisRateLimiter(
            settings.redis_url,
            failure_mode=settings.rate_limit_failure_mode,
            timeout=settings.rate_limit_redis_timeout,
            prefix=settings.rate_limit_redis_prefix,
        )
    return MemoryRateLimiter()


def create_endpoint_limiter(settings: Settings) -> EndpointLimiter:
    """Endpoint buckets in Redis when ``redis_url`` is set (the tenant limiter's timeout and
    prefix), else in-memory ones."""
    if settings.redis_url:
        from webhookd.ratelimit.redis_buckets import RedisEndpointLimiter

        return RedisEndpointLimiter(
            settings.redis_url,
            timeout=settings.rate_limit_redis_timeout,
            prefix=settings.rate_limit_redis_prefix,
        )
    return MemoryEndpointLimiter()
