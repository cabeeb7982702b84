"""Token buckets in Redis, shared by every process: one atomic script per round trip.

Imported only when ``redis_url`` is set, so the embedded default never loads redis-py.
"""

from __future__ import annotations

import abc
import asyncio
import math
import time
from typing import Generic, Literal, TypeVar

import redis.asyncio
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from webhookd import metrics
from webhookd.db import network_wait
from webhookd.errors import AppError
from webhookd.ratelimit import Decision, MemoryEndpointLimiter, check_rate, endpoint_burst

log = structlog.get_logger("webhookd.ratelimit")

R = TypeVar("R")

# Bucket steps, atomically, on the Redis server's clock (so every process agrees): one per
# key, in order (the same key may come several times). KEYS[i] = bucket hash {tokens, ts};
# ARGV[2i-1], ARGV[2i] = its capacity and its refill in tokens per second. Returns, per key:
# allowed (0/1), remaining tokens (floor), seconds until the next token (string).
BUCKET_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for i = 1, #KEYS do
  local capacity = tonumber(ARGV[2 * i - 1])
  local rate = tonumber(ARGV[2 * i])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(state[1])
  local ts = tonumber(state[2])
  if tokens == nil or ts == nil then
    tokens = capacity
    ts = now
  end
  local elapsed = now - ts
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(capacity, tokens + elapsed * rate)
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
  redis.call('PEXPIRE', KEYS[i],
             string.format('%d', math.ceil((capacity - tokens) / rate * 1000) + 5000))
  out[#out + 1] = allowed
  out[#out + 1] = math.floor(tokens)
  out[#out + 1] = string.format('%.6f', wait)
end
return out
"""

UNAVAILABLE_MESSAGE = "rate limiter unavailable; try again shortly"
_LOG_EVERY = 10.0  # seconds between two ratelimit.redis_unavailable warnings of one limiter
_MIN_WAIT = 1e-6  # a refusal never answers 0 s (the script rounds its waits to microseconds)

# A bucket step waiting for Redis: key (without the prefix), capacity, rate, its answer.
_Step = tuple[str, float, float, asyncio.Future[R]]


class _RedisBuckets(abc.ABC, Generic[R]):
    """Token buckets in Redis, by one atomic BUCKET_SCRIPT per round trip. The steps waiting
    while a round trip is in flight go together in the next one (in arrival order, each as if
    alone): a Redis call costs this process far more CPU than the script costs Redis.

    Subclasses turn a step's outcome into an answer (``_answer``) and decide what a Redis
    failure gives (``_fallback``, which may raise an ``AppError`` for the caller)."""

    MAX_BATCH = 500

    def __init__(self, url: str, *, timeout: float, prefix: str) -> None:
        self.timeout = timeout
        self.prefix = prefix
        self._client = redis.asyncio.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # one try: a dead Redis must not hold a caller
        )
        self._script = self._client.register_script(BUCKET_SCRIPT)
        self._last_log = -math.inf
        self._unlogged = 0
        self._waiting: list[_Step[R]] = []
        self._runner: asyncio.Task[None] | None = None

    @abc.abstractmethod
    def _answer(self, step: _Step[R], allowed: bool, remaining: int, wait: float) -> R:
        """The caller's answer for one bucket step."""

    @abc.abstractmethod
    def _fallback(self, step: _Step[R], exc: Exception) -> R:
        """The caller's answer when Redis failed (may raise an ``AppError``)."""

    def _submit(self, key: str, capacity: float, rate: float) -> asyncio.Future[R]:
        """Queue one bucket step; its answer comes with the next round trip."""
        network_wait("a Redis rate-limit check")
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((key, capacity, rate, answer))
        if self._runner is None:
            self._runner = asyncio.create_task(self._drain(), name="webhookd-ratelimit")
        return answer

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.MAX_BATCH]
                del self._waiting[: self.MAX_BATCH]
                try:
                    await self._check(batch)
                finally:  # cancelled (closed) mid-call: no caller waits forever
                    for *_, answer in batch:
                        answer.cancel()  # a no-op on the answered ones
        finally:
            self._runner = None

    async def _check(self, batch: list[_Step[R]]) -> None:
        try:
            # Socket timeouts bound each step; this bounds the whole call (connect + eval).
            async with asyncio.timeout(4 * self.timeout):
                flat = await self._script(
                    keys=[self.prefix + key for key, *_ in batch],
                    args=[arg for _, capacity, rate, _ in batch for arg in (capacity, rate)],
                )
        except (RedisError, OSError, TimeoutError) as exc:
            for step in batch:
                answer = step[3]
                if answer.done():  # a caller that went away (or stopped waiting)
                    continue
                try:
                    answer.set_result(self._fallback(step, exc))
                except AppError as refused:
                    answer.set_exception(refused)
            return
        for n, step in enumerate(batch):
            allowed, remaining, wait = flat[3 * n : 3 * n + 3]
            if not step[3].done():
                step[3].set_result(self._answer(step, bool(allowed), int(remaining), float(wait)))

    def _count_failure(self, exc: Exception, **fields: object) -> None:
        """Count a failed step; warn at most once per ``_LOG_EVERY`` seconds."""
        metrics.RATE_LIMITER_ERRORS.inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY:  # an outage must not flood the logs
            log.warning(
                "ratelimit.redis_unavailable",
                error=type(exc).__name__,
                detail=str(exc)[:200],
                **fields,
                failures=self._unlogged,
            )
            self._last_log, self._unlogged = now, 0

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for *_, answer in self._waiting:
            answer.cancel()
        self._waiting.clear()
        await self._client.aclose()


class RedisRateLimiter(_RedisBuckets[Decision]):
    """Tenant token buckets in Redis, shared by every API process, batched per round trip.

    When Redis fails (down, slow beyond ``timeout``, erroring), ``failure_mode`` decides:
    ``"open"`` lets the request through, ``"closed"`` refuses it with a 503.
    """

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
        super().__init__(url, timeout=timeout, prefix=prefix)
        self.failure_mode = failure_mode

    async def acquire(self, key: str, limit: int) -> Decision:
        return await self._submit(key, limit, limit / 60.0)

    def _answer(
        self, step: _Step[Decision], allowed: bool, remaining: int, wait: float
    ) -> Decision:
        return Decision(allowed, int(step[1]), remaining, wait)

    def _fallback(self, step: _Step[Decision], exc: Exception) -> Decision:
        return self._unavailable(exc, int(step[1]))

    def _unavailable(self, exc: Exception, limit: int) -> Decision:
        self._count_failure(exc, failure_mode=self.failure_mode)
        if self.failure_mode == "closed":
            raise AppError(
                UNAVAILABLE_MESSAGE,
                status_code=503,
                code="rate_limiter_unavailable",
                headers={"Retry-After": "1"},
            ) from exc
        return Decision(True, limit, max(0, limit - 1), 0.0)


class RedisEndpointLimiter(_RedisBuckets[float]):
    """Endpoint token buckets in Redis (key ``prefix + "endpoint:" + key``), shared by every
    worker, batched per round trip. A take never waits more than about ``timeout``: when Redis
    fails or is slower, that take is answered by a bucket in this process's memory."""

    def __init__(
        self, url: str, *, timeout: float = 0.25, prefix: str = "webhookd:ratelimit:"
    ) -> None:
        super().__init__(url, timeout=timeout, prefix=prefix)
        self._memory = MemoryEndpointLimiter()

    async def take(self, key: str, rate: float) -> float:
        check_rate(rate)
        step_key = "endpoint:" + key
        answer = self._submit(step_key, endpoint_burst(rate), rate)
        try:
            async with asyncio.timeout(self.timeout):
                return await answer  # a timeout cancels it: the round trip then skips it
        except TimeoutError as exc:
            return self._fallback((step_key, endpoint_burst(rate), rate, answer), exc)

    def _answer(self, step: _Step[float], allowed: bool, remaining: int, wait: float) -> float:
        return 0.0 if allowed else max(_MIN_WAIT, wait)

    def _fallback(self, step: _Step[float], exc: Exception) -> float:
        self._count_failure(exc, limiter="endpoint", failure_mode="open")
        return self._memory.take_now(step[0], step[2])

    async def close(self) -> None:
        await super().close()
        await self._memory.close()
