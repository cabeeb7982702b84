"""Tests for webhookd.delivery.retry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from webhookd.delivery.retry import RetryPolicy, next_delay, parse_retry_after, schedule

DEFAULT = RetryPolicy()
FAST = RetryPolicy(base_delay=0.01, max_delay=0.32)
NOW = datetime(2015, 10, 21, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 32.0), (7, None), (8, None)],
)
def test_default_schedule(attempt: int, expected: float | None) -> None:
    assert next_delay(DEFAULT, attempt) == expected


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.01), (2, 0.02), (3, 0.04), (4, 0.08), (5, 0.16), (6, 0.32), (7, None)],
)
def test_scaled_base(attempt: int, expected: float | None) -> None:
    result = next_delay(FAST, attempt)
    assert result == expected if expected is None else result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (DEFAULT, [1, 2, 4, 8, 16, 32]),
        (RetryPolicy(max_attempts=1), []),
        (RetryPolicy(max_attempts=2), [1]),
        (RetryPolicy(max_attempts=10), [1, 2, 4, 8, 16, 32, 32, 32, 32]),
        (RetryPolicy(base_delay=5, max_delay=60, max_attempts=6), [5, 10, 20, 40, 60]),
        (RetryPolicy(base_delay=0, max_delay=0, max_attempts=3), [0, 0]),
    ],
)
def test_schedule(policy: RetryPolicy, expected: list[float]) -> None:
    assert schedule(policy) == expected


def test_huge_attempt_numbers_cap_without_overflow() -> None:
    policy = RetryPolicy(max_attempts=10**6)
    assert next_delay(policy, 5000) == 32.0


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, None, 1.0),
        (1, 10.0, 10.0),  # receiver asks for longer: honoured
        (3, 1.0, 4.0),  # shorter than the schedule: schedule wins
        (1, 120.0, 32.0),  # never beyond max_delay
        (1, math.inf, 32.0),
        (2, 0.0, 2.0),
        (2, -5.0, 2.0),  # negative ignored
        (2, math.nan, 2.0),  # NaN ignored
        (7, 10.0, None),  # exhausted regardless of Retry-After
    ],
)
def test_retry_after(attempt: int, retry_after: float | None, expected: float | None) -> None:
    assert next_delay(DEFAULT, attempt, retry_after=retry_after) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_delay": -1},
        {"base_delay": 10, "max_delay": 5},
        {"max_attempts": 0},
        {"base_delay": math.nan},
    ],
)
def test_invalid_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError):
        next_delay(DEFAULT, 0)


@pytest.mark.parametrize(
    ("value", "now", "expected"),
    [
        ("120", NOW, 120.0),
        (" 5 ", NOW, 5.0),
        ("0", NOW, 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", NOW, 1680.0),
        ("Wed, 21 Oct 2015 06:00:00 GMT", NOW, 0.0),  # in the past: no wait
        ("Wed, 21 Oct 2015 07:00:30 -0000", NOW, 30.0),  # naive date taken as UTC
        ("Wed, 21 Oct 2015 09:00:10 +0200", NOW, 10.0),
        ("Wed, 21 Oct 2015 07:00:30 GMT", NOW.replace(tzinfo=None), 30.0),
        (
            "Wed, 21 Oct 2015 07:28:00 GMT",
            NOW.astimezone(timezone(timedelta(hours=-5))),
            1680.0,
        ),
        (None, NOW, None),
        ("", NOW, None),
        ("soon", NOW, None),
        ("-5", NOW, None),
        ("1.5", NOW, None),
        ("１２", NOW, None),  # non-ASCII digits are not delta-seconds
        ("Wed, 99 Foo 2015 07:28:00 GMT", NOW, None),
    ],
)
def test_parse_retry_after(value: str | None, now: datetime, expected: float | None) -> None:
    assert parse_retry_after(value, now) == expected


def test_parse_then_next_delay() -> None:
    wait = parse_retry_after("Wed, 21 Oct 2015 07:00:20 GMT", NOW)
    assert next_delay(DEFAULT, 1, retry_after=wait) == 20.0
