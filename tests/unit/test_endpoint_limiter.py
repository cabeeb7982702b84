"""The per-endpoint delivery limiter: the pure bucket step, the burst, the in-memory limiter on
a fake clock, and the Redis limiter against the real Redis on 127.0.0.1:6379, database 15
(each test its own key prefix, deleted afterwards), including its fallback to memory.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from unittest import mock

import pytest

from tests.fixtures.services import REDIS_URL
from tests.test_ratelimit_redis import (  # the Redis helpers and fixtures of the tenant limiter
    DEAD_REDIS_URL,
    errors_total,
    prefix,
    recorded,
    sync_redis,
)
from tests.unit.test_ratelimit import FakeClock
from webhookd.config import Settings
from webhookd.ratelimit import (
    MemoryEndpointLimiter,
    create_endpoint_limiter,
    endpoint_burst,
    take_token,
    take_tokens,
)
from webhookd.ratelimit.redis_buckets import RedisEndpointLimiter

__all__ = ["prefix", "recorded"]  # fixtures, used by name


# --- the pure functions -----------------------------------------------------------------------


# (tokens, updated, now, capacity, rate) -> (allowed, tokens_left, wait)
@pytest.mark.parametrize(
    ("tokens", "updated", "now", "capacity", "rate", "expected"),
    [
        # A full bucket gives a token and keeps the rest.
        (5.0, 0.0, 0.0, 5.0, 100.0, (True, 4.0, 0.0)),
        # Exactly one token: allowed, bucket empty.
        (1.0, 2.0, 2.0, 1.0, 20.0, (True, 0.0, 0.0)),
        # Empty, no time passed: refused; at 20/s one token takes 50 ms.
        (0.0, 0.0, 0.0, 1.0, 20.0, (False, 0.0, 0.05)),
        # 25 ms at 20/s refills half a token: refused, 25 ms to go.
        (0.0, 0.0, 0.025, 1.0, 20.0, (False, 0.5, 0.025)),
        # 50 ms refills a whole one.
        (0.0, 0.0, 0.05, 1.0, 20.0, (True, 0.0, 0.0)),
        # Fractional rates: 0.5/s needs 2 s for a token; after 1 s, half of one.
        (0.0, 0.0, 0.0, 1.0, 0.5, (False, 0.0, 2.0)),
        (0.0, 0.0, 1.0, 1.0, 0.5, (False, 0.5, 1.0)),
        (0.0, 0.0, 2.0, 1.0, 0.5, (True, 0.0, 0.0)),
        # Capacity caps the refill however long the bucket sat idle.
        (0.0, 0.0, 3600.0, 2.5, 50.0, (True, 1.5, 0.0)),
        # A bucket above a (lowered) capacity is capped to it first.
        (50.0, 0.0, 0.0, 1.0, 20.0, (True, 0.0, 0.0)),
        # Fractions add up: 0.75 + 0.25 s at 1/s.
        (0.75, 0.0, 0.25, 1.0, 1.0, (True, 0.0, 0.0)),
        # Just under a token: refused, the rest of it to wait.
        (0.9, 0.0, 0.0, 1.0, 10.0, (False, 0.9, 0.01)),
    ],
)
def test_take_tokens(tokens, updated, now, capacity, rate, expected) -> None:
    allowed, left, wait = take_tokens(tokens, updated, now, capacity, rate)
    assert allowed is expected[0]
    assert left == pytest.approx(expected[1], abs=1e-9)
    assert wait == pytest.approx(expected[2], abs=1e-9)


@pytest.mark.parametrize(
    ("tokens", "updated", "now", "limit"),
    [(10.0, 0.0, 0.0, 10), (0.0, 0.0, 0.5, 60), (0.0, 0.0, 1.0, 30), (500.0, 0.0, 0.0, 2)],
)
def test_take_token_is_take_tokens_per_minute(tokens, updated, now, limit) -> None:
    assert take_token(tokens, updated, now, limit) == take_tokens(
        tokens, updated, now, float(limit), limit / 60.0
    )


@pytest.mark.parametrize(
    ("rate", "burst"),
    [
        (0.5, 1.0),  # at least one token, however slow
        (1.0, 1.0),
        (20.0, 1.0),  # 5 % of 20 is 1
        (19.0, 1.0),
        (40.0, 2.0),
        (100.0, 5.0),
        (1000.0, 50.0),
        (30.0, 1.5),
    ],
)
def test_endpoint_burst(rate, burst) -> None:
    assert endpoint_burst(rate) == pytest.approx(burst)


# --- MemoryEndpointLimiter on a fake clock ---------------------------------------------------


def take(limiter: MemoryEndpointLimiter, key: str, rate: float) -> float:
    return asyncio.run(limiter.take(key, rate))


def most_in_a_window(times: list[float], width: float = 1.0) -> int:
    """The most of ``times`` (sorted) in any closed window ``[t, t + width]``."""
    return max(bisect.bisect_right(times, t + width) - i for i, t in enumerate(times))


def test_twenty_per_second_lets_at_most_21_through_in_any_second() -> None:
    clock = FakeClock(0.0)
    limiter = MemoryEndpointLimiter(clock=clock)
    allowed: list[float] = []
    for ms in range(5000):  # a take every millisecond for 5 s
        clock.now = ms / 1000
        wait = take(limiter, "ep", 20.0)
        assert wait >= 0.0
        if wait == 0.0:
            allowed.append(clock.now)
        else:
            assert wait <= 1 / 20 + 1e-9  # burst 1: never more than one token away
    assert 20 <= most_in_a_window(allowed) <= 21
    # And it does let 20 a second through: the full bucket, then one every 50 ms.
    assert 95 <= len(allowed) <= 101  # 1 + 20 / s; a take lands on the next whole ms
    for second in range(1, 5):
        in_second = [t for t in allowed if second <= t < second + 1]
        assert 19 <= len(in_second) <= 21, (second, len(in_second))


def test_a_fractional_rate() -> None:
    clock = FakeClock()
    limiter = MemoryEndpointLimiter(clock=clock)
    assert take(limiter, "ep", 0.5) == 0.0  # a new bucket holds one token
    assert take(limiter, "ep", 0.5) == pytest.approx(2.0)
    clock.advance(1.5)
    assert take(limiter, "ep", 0.5) == pytest.approx(0.5)  # refusals take nothing
    clock.advance(0.5)
    assert take(limiter, "ep", 0.5) == 0.0
    assert take(limiter, "ep", 0.5) == pytest.approx(2.0)


def test_a_lower_rate_clamps_the_bucket_to_its_burst() -> None:
    clock = FakeClock()
    limiter = MemoryEndpointLimiter(clock=clock)
    assert take(limiter, "ep", 100.0) == 0.0  # burst 5: 4 left
    # Now 10/s: burst 1, so only one of the 4 tokens is left, refilled at 10/s.
    assert take(limiter, "ep", 10.0) == 0.0
    assert take(limiter, "ep", 10.0) == pytest.approx(0.1)
    clock.advance(0.1)
    assert take(limiter, "ep", 10.0) == 0.0


def test_a_higher_rate_refills_faster_at_once() -> None:
    clock = FakeClock()
    limiter = MemoryEndpointLimiter(clock=clock)
    assert take(limiter, "ep", 1.0) == 0.0
    assert take(limiter, "ep", 1.0) == pytest.approx(1.0)
    clock.advance(0.025)  # 0.025 tokens at 1/s, but 2.5 at 100/s (burst 5)
    assert take(limiter, "ep", 100.0) == 0.0
    assert take(limiter, "ep", 100.0) == 0.0
    assert take(limiter, "ep", 100.0) == pytest.approx(0.005)


def test_buckets_are_per_key_and_close_forgets_them() -> None:
    limiter = MemoryEndpointLimiter(clock=FakeClock())
    assert take(limiter, "a", 1.0) == 0.0
    assert take(limiter, "a", 1.0) > 0.0
    assert take(limiter, "b", 1.0) == 0.0
    asyncio.run(limiter.close())
    assert take(limiter, "a", 1.0) == 0.0


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf])
def test_a_rate_must_be_positive_and_finite(rate) -> None:
    with pytest.raises(ValueError, match="rate"):
        take(MemoryEndpointLimiter(), "ep", rate)

    async def redis_take() -> float:
        limiter = RedisEndpointLimiter(DEAD_REDIS_URL)
        try:
            return await limiter.take("ep", rate)
        finally:
            await limiter.close()

    with pytest.raises(ValueError, match="rate"):
        asyncio.run(redis_take())


# --- the factory ----------------------------------------------------------------------------


def test_create_endpoint_limiter_picks_redis_when_a_url_is_set() -> None:
    assert isinstance(create_endpoint_limiter(Settings(redis_url=None)), MemoryEndpointLimiter)
    settings = Settings(
        redis_url=DEAD_REDIS_URL, rate_limit_redis_timeout=0.5, rate_limit_redis_prefix="x:"
    )
    limiter = create_endpoint_limiter(settings)
    assert isinstance(limiter, RedisEndpointLimiter)
    assert (limiter.timeout, limiter.prefix) == (0.5, "x:")
    asyncio.run(limiter.close())


# --- RedisEndpointLimiter against the real Redis ------------------------------------------------


def test_redis_bucket_steps_and_key(prefix) -> None:
    async def main() -> list[float]:
        limiter = RedisEndpointLimiter(REDIS_URL, prefix=prefix, timeout=2.0)
        try:
            return [await limiter.take("ep:1", 0.5) for _ in range(3)]
        finally:
            await limiter.close()

    before = errors_total()
    first, second, third = asyncio.run(main())
    assert errors_total() == before  # answered by Redis, not the fallback
    assert first == 0.0
    assert 1.9 < second <= 2.0 and 1.9 < third <= 2.0  # 0.5/s: a token every 2 s
    with sync_redis() as client:
        key = prefix + "endpoint:ep:1"
        assert set(client.hgetall(key)) == {b"tokens", b"ts"}
        # Gone once it would be full again (2 s at 0.5/s from empty), plus 5 s.
        assert 6_000 < client.pttl(key) <= 7_000


def test_redis_rate_change_clamps_the_bucket(prefix) -> None:
    async def main() -> list[float]:
        limiter = RedisEndpointLimiter(REDIS_URL, prefix=prefix, timeout=2.0)
        try:
            # 100/s holds 5; at 0.5/s the bucket holds 1: one take, then 2 s to wait.
            return [await limiter.take("ep", rate) for rate in (100.0, 0.5, 0.5)]
        finally:
            await limiter.close()

    first, second, third = asyncio.run(main())
    assert (first, second) == (0.0, 0.0)
    assert 1.9 < third <= 2.0


def test_concurrent_takes_share_round_trips(prefix) -> None:
    async def main() -> tuple[list[float], int]:
        limiter = RedisEndpointLimiter(REDIS_URL, prefix=prefix, timeout=2.0)
        script = limiter._script = mock.AsyncMock(wraps=limiter._script.__call__)
        try:
            # Two endpoints at 0.5/s (burst 1), interleaved, 20 takes each.
            waits = await asyncio.gather(*(limiter.take(k, 0.5) for k in ["a", "b"] * 20))
            return waits, script.await_count
        finally:
            await limiter.close()

    waits, calls = asyncio.run(main())
    assert 1 <= calls < 5  # 40 takes waiting together: a few round trips, not 40
    for endpoint in (0, 1):  # in arrival order, per bucket: the first one only
        mine = waits[endpoint::2]
        assert mine[0] == 0.0
        assert all(1.9 < wait <= 2.0 for wait in mine[1:])


def test_two_limiters_share_one_bucket(prefix) -> None:
    rate, seconds = 20.0, 2.0

    async def worker(limiter: RedisEndpointLimiter, name: str, until: float, out: list) -> None:
        while time.monotonic() < until:
            sent = time.monotonic()
            wait = await limiter.take("shared", rate)
            out.append((sent, time.monotonic(), wait, name))
            await asyncio.sleep(0.003)

    async def main() -> tuple[list, float, float]:
        # Two clients (two connection pools), like two worker processes. Patient, so that a
        # slow call on a loaded machine is not answered by the per-process fallback.
        limiters = [RedisEndpointLimiter(REDIS_URL, prefix=prefix, timeout=2.0) for _ in "ab"]
        out: list = []
        started = time.monotonic()
        try:
            await asyncio.gather(
                *(
                    worker(limiter, name, started + seconds, out)
                    for limiter, name in zip(limiters * 2, "abab", strict=True)
                )
            )
        finally:
            for limiter in limiters:
                await limiter.close()
        return out, started, time.monotonic()

    before = errors_total()
    takes, started, ended = asyncio.run(main())
    assert errors_total() == before  # every answer came from Redis
    assert ended - started < 3.0
    assert all(wait >= 0.0 for *_, wait, _ in takes)
    assert all(wait <= 1 / rate + 1e-6 for *_, wait, _ in takes if wait > 0)
    allowed = sorted((sent, answered) for sent, answered, wait, _ in takes if wait == 0.0)
    burst = endpoint_burst(rate)
    # Redis decided each take between its sending and its answer: the takes sent at or after
    # one take's sending and answered within a second of it were all decided in that second.
    for sent, _ in allowed:
        within = sum(1 for s, a in allowed if sent <= s and a <= sent + 1.0)
        assert within <= rate + burst, (within, sent - started)
    assert len(allowed) <= burst + rate * (ended - started)
    # And the bucket did let the rate through, to both limiters alike (one bucket, not two).
    assert len(allowed) >= 0.75 * rate * seconds, len(allowed)
    assert {name for *_, wait, name in takes if wait == 0.0} == {"a", "b"}


# --- Redis unavailable ----------------------------------------------------------------------


def test_a_dead_redis_falls_back_to_memory(recorded) -> None:
    async def main() -> list[float]:
        limiter = RedisEndpointLimiter(DEAD_REDIS_URL, timeout=0.25)
        try:
            return [await limiter.take("ep", 2.0) for _ in range(3)]
        finally:
            await limiter.close()

    before = errors_total()
    started = time.monotonic()
    waits = asyncio.run(main())
    assert time.monotonic() - started < 1.0
    # From an in-memory bucket at 2/s (burst 1): one take, then half a second to wait.
    assert waits[0] == 0.0
    assert 0.45 < waits[1] <= 0.5 and 0.45 < waits[2] <= 0.5
    assert errors_total() - before == 3
    # One warning for the burst (then at most one per 10 s).
    assert len(recorded.calls) == 1
    event, fields = recorded.calls[0]
    assert event == "ratelimit.redis_unavailable"
    assert fields["error"] == "ConnectionError" and fields["limiter"] == "endpoint"


def test_a_slow_redis_costs_at_most_the_timeout(recorded) -> None:
    async def main() -> tuple[float, float]:
        limiter = RedisEndpointLimiter(DEAD_REDIS_URL, timeout=0.1)

        async def hanging(**kwargs):
            await asyncio.sleep(10)

        limiter._script = hanging  # slower than every bound but the take's own
        try:
            started = time.monotonic()
            wait = await limiter.take("ep", 1.0)
            return wait, time.monotonic() - started
        finally:
            await limiter.close()

    before = errors_total()
    wait, elapsed = asyncio.run(main())
    assert wait == 0.0  # from memory: a new bucket holds a token
    assert 0.08 < elapsed < 0.3
    assert errors_total() - before == 1
    assert recorded.calls[0][1]["error"] == "TimeoutError"
