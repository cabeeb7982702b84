"""The token bucket: the pure step function and the in-memory limiter on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from webhookd.ratelimit import Decision, MemoryRateLimiter, take_token


# (tokens, updated, now, limit) -> (allowed, tokens_left, wait)
@pytest.mark.parametrize(
    ("tokens", "updated", "now", "limit", "expected"),
    [
        # A full bucket gives a token and keeps the rest.
        (10.0, 0.0, 0.0, 10, (True, 9.0, 0.0)),
        # Exactly one token left: allowed, bucket empty.
        (1.0, 5.0, 5.0, 60, (True, 0.0, 0.0)),
        # Empty, no time passed: refused; at 60/min one token takes 1 s.
        (0.0, 0.0, 0.0, 60, (False, 0.0, 1.0)),
        # Half a second at 1 token/s refills half a token: still refused, 0.5 s to go.
        (0.0, 0.0, 0.5, 60, (False, 0.5, 0.5)),
        # A full second refills one token: allowed.
        (0.0, 0.0, 1.0, 60, (True, 0.0, 0.0)),
        # Refill is limit/60 per second: 120/min is 2 tokens/s.
        (0.0, 10.0, 11.0, 120, (True, 1.0, 0.0)),
        # 30/min is 0.5 tokens/s: after 1 s, half a token and 1 s more to wait.
        (0.0, 0.0, 1.0, 30, (False, 0.5, 1.0)),
        # 1/min: an empty bucket waits a whole minute.
        (0.0, 0.0, 0.0, 1, (False, 0.0, 60.0)),
        # Capacity caps the refill however long the bucket sat idle.
        (0.0, 0.0, 3600.0, 10, (True, 9.0, 0.0)),
        (10.0, 0.0, 3600.0, 10, (True, 9.0, 0.0)),
        # A bucket above a (lowered) limit is capped to the new capacity first.
        (500.0, 0.0, 0.0, 2, (True, 1.0, 0.0)),
        # Fractions add up: 0.75 + 0.25 s at 1 token/s = 1 token.
        (0.75, 0.0, 0.25, 60, (True, 0.0, 0.0)),
    ],
)
def test_take_token(tokens, updated, now, limit, expected) -> None:
    allowed, left, wait = take_token(tokens, updated, now, limit)
    assert allowed is expected[0]
    assert left == pytest.approx(expected[1], abs=1e-9)
    assert wait == pytest.approx(expected[2], abs=1e-9)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def acquire(limiter: MemoryRateLimiter, key: str, limit: int) -> Decision:
    return asyncio.run(limiter.acquire(key, limit))


def test_a_new_bucket_starts_full_and_counts_down() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    decisions = [acquire(limiter, "t", 5) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert all(d.limit == 5 for d in decisions)
    assert [d.retry_after for d in decisions[:5]] == [0.0] * 5
    assert decisions[5].retry_after == pytest.approx(12.0)  # 60 s / 5 per token


def test_refill_is_limit_over_sixty_per_second() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    for _ in range(60):
        assert acquire(limiter, "t", 60).allowed
    refused = acquire(limiter, "t", 60)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(1.0)

    clock.advance(0.5)
    refused = acquire(limiter, "t", 60)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.5)  # a refusal keeps the partial token

    clock.advance(0.5)
    assert acquire(limiter, "t", 60).allowed
    assert not acquire(limiter, "t", 60).allowed

    clock.advance(3.0)  # three tokens
    assert [acquire(limiter, "t", 60).allowed for _ in range(4)] == [True, True, True, False]


def test_capacity_caps_an_idle_bucket() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    for _ in range(3):
        acquire(limiter, "t", 3)
    clock.advance(24 * 3600)
    assert [acquire(limiter, "t", 3).allowed for _ in range(4)] == [True, True, True, False]


def test_buckets_are_per_key() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    assert [acquire(limiter, "tenant:1", 2).allowed for _ in range(3)] == [True, True, False]
    assert acquire(limiter, "tenant:2", 2).allowed
    assert acquire(limiter, "tenant:2", 2).remaining == 0
    assert not acquire(limiter, "tenant:1", 2).allowed


def test_a_lower_limit_applies_to_an_existing_bucket() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    assert acquire(limiter, "t", 100).remaining == 99
    assert [acquire(limiter, "t", 2).allowed for _ in range(3)] == [True, True, False]


def test_close_forgets_every_bucket() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    for _ in range(2):
        acquire(limiter, "t", 2)
    assert not acquire(limiter, "t", 2).allowed
    asyncio.run(limiter.close())
    assert acquire(limiter, "t", 2).allowed


@pytest.mark.parametrize(
    ("decision", "headers"),
    [
        (Decision(True, 10, 9, 0.0), {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "9"}),
        (
            Decision(False, 5, 0, 12.0),
            {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "Retry-After": "12"},
        ),
        # Retry-After is whole seconds, rounded up, and never 0.
        (
            Decision(False, 5, 0, 11.2),
            {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "Retry-After": "12"},
        ),
        (
            Decision(False, 6000, 0, 0.01),
            {"X-RateLimit-Limit": "6000", "X-RateLimit-Remaining": "0", "Retry-After": "1"},
        ),
        (
            Decision(False, 1, 0, 0.0),
            {"X-RateLimit-Limit": "1", "X-RateLimit-Remaining": "0", "Retry-After": "1"},
        ),
    ],
)
def test_decision_headers(decision, headers) -> None:
    assert decision.headers == headers
