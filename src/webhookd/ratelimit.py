"""Per-tenant token bucket: capacity ``rate_limit``, refilled at ``rate_limit / 60`` tokens/s.

``RateLimiter`` is the seam: the in-memory bucket here serves one process; a Redis bucket
(one atomic script per check) implements the same protocol for several API processes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import redis.asyncio
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from webhookd import metrics
from webhookd.db import network_wait
from webhookd.errors import AppError

if TYPE_CHECKING:
    from webhookd.config import Settings

log = structlog.get_logger("webhookd.ratelimit")


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


def refill(tokens: float, updated: float, now: float, capacity: float, rate: float) -> float:
    """Pure bucket step: the tokens of a bucket of ``capacity`` refilled at ``rate`` per
    second since ``updated``."""
    return min(capacity, tokens + (now - updated) * rate)


def take_token(tokens: float, updated: float, now: float, limit: int) -> tuple[bool, float, float]:
    """Pure bucket step of a per-minute limit: refill since ``updated``, try to take one token.

    Returns (allowed, tokens_left, seconds_until_next_token).
    """
    rate = limit / 60.0
    tokens = refill(tokens, updated, now, float(limit), rate)
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


# Bucket steps, atomically, on the Redis server's clock (so every API process agrees): one
# per key, in order (the same key may come several times). KEYS[i] = bucket hash
# {tokens, ts}; ARGV[i] = its limit (capacity; refill limit/60 per second). Returns, per
# key: allowed (0/1), remaining tokens (floor), seconds until the next token (string).
BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[i])
  local rate = limit / 60.0
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens = limit
    ts = now
  end
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(limit, tokens + elapsed * rate)
  local allowed = 0
  local wait = 0
  if tokens >= 1 then
    allowed = 1
    tokens = tokens - 1
  else
    wait = (1 - tokens) / rate
  end
  redis.call('HSET', KEYS[i], 'tokens', string.format('%.17g', tokens),
             'ts', string.format('%.6f', now))
  -- Gone once it would be full again anyway (a missing bucket starts full), plus a margin.
  redis.call('PEXPIRE', KEYS[i], math.ceil((limit - tokens) / rate * 1000) + 5000)
  out[#out + 1] = allowed
  out[#out + 1] = math.floor(tokens)
  out[#out + 1] = string.format('%.6f', wait)
end
return out
"""

UNAVAILABLE_MESSAGE = "rate limiter unavailable; try again shortly"
_LOG_EVERY = 10.0  # seconds between two ratelimit.redis_unavailable warnings of one limiter


class RedisRateLimiter:
    """Token buckets in Redis, shared by every API process: one atomic Lua script per round
    trip. The checks waiting while a round trip is in flight go together in the next one
    (in arrival order, each bucket step as if alone): a Redis call costs the API far more
    CPU than the script costs Redis, so under load one call serves many publishes.

    When Redis fails (down, slow beyond ``timeout``, erroring), ``failure_mode`` decides:
    ``"open"`` lets the request through, ``"closed"`` refuses it with a 503.
    """

    MAX_BATCH = 500

    def __init__(
        self,
        url: str,
        *,
        failure_mode: Literal["open", "closed"] = "open",
        timeout: float = 0.25,
        prefix: str = "webhookd:ratelimit:",
    ) -> None:
        if failure_mode not in ("open", "closed"):
            raise ValueError(f"failure_mode must be 'open' or 'closed', not {failure_mode!r}")
        self.failure_mode = failure_mode
        self.timeout = timeout
        self.prefix = prefix
        self._client = redis.asyncio.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # one try: a dead Redis must not hold a request
        )
        self._script = self._client.register_script(BUCKET_SCRIPT)
        self._last_log = -math.inf
        self._unlogged = 0
        self._waiting: list[tuple[str, int, asyncio.Future[Decision]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def acquire(self, key: str, limit: int) -> Decision:
        answer: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, limit, answer))
        if self._runner is None:
            self._runner = asyncio.create_task(self._drain(), name="webhookd-ratelimit")
        return await answer

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.MAX_BATCH]
                del self._waiting[: self.MAX_BATCH]
                await self._check(batch)
        finally:
            self._runner = None

    async def _check(self, batch: list[tuple[str, int, asyncio.Future[Decision]]]) -> None:
        network_wait("a Redis rate-limit check")
        try:
            # Socket timeouts bound each step; this bounds the whole call (connect + eval).
            async with asyncio.timeout(4 * self.timeout):
                flat = await self._script(
                    keys=[self.prefix + key for key, _, _ in batch],
                    args=[limit for _, limit, _ in batch],
                )
        except (RedisError, OSError, TimeoutError) as exc:
            for _, limit, answer in batch:
                try:
                    decision = self._unavailable(exc, limit)
                except AppError as refused:
                    if not answer.done():
                        answer.set_exception(refused)
                    continue
                if not answer.done():
                    answer.set_result(decision)
            return
        for n, (_, limit, answer) in enumerate(batch):
            allowed, remaining, wait = flat[3 * n : 3 * n + 3]
            if not answer.done():  # a request that went away cancelled its wait
                answer.set_result(Decision(bool(allowed), limit, int(remaining), float(wait)))

    def _unavailable(self, exc: Exception, limit: int) -> Decision:
        metrics.RATE_LIMITER_ERRORS.inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY:  # an outage must not flood the logs
            log.warning(
                "ratelimit.redis_unavailable",
                error=type(exc).__name__,
                detail=str(exc)[:200],
                failure_mode=self.failure_mode,
                failures=self._unlogged,
            )
            self._last_log, self._unlogged = now, 0
        if self.failure_mode == "closed":
            raise AppError(
                UNAVAILABLE_MESSAGE,
                status_code=503,
                code="rate_limiter_unavailable",
                headers={"Retry-After": "1"},
            ) from exc
        return Decision(True, limit, max(0, limit - 1), 0.0)

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for *_, answer in self._waiting:
            answer.cancel()
        self._waiting.clear()
        await self._client.aclose()


def create_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis buckets shared by every process when ``redis_url`` is set, else in-memory ones."""
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url,
            failure_mode=settings.rate_limit_failure_mode,
            timeout=settings.rate_limit_redis_timeout,
            prefix=settings.rate_limit_redis_prefix,
        )
    return MemoryRateLimiter()
