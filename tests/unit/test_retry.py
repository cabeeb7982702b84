"""Tests for the retry timing (webhookd.delivery.retry) and its use by an endpoint's policy."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from webhookd.delivery.policy import EndpointPolicy
from webhookd.delivery.retry import backoff, backoff_schedule, parse_retry_after


def policy(base: float = 1.0, cap: float = 32.0, attempts: int = 7) -> EndpointPolicy:
    return EndpointPolicy(
        retry_schedule=backoff_schedule(base, cap, attempts),
        retry_after_cap=cap,
        max_in_flight=100,
        request_timeout=10.0,
        connect_timeout=5.0,
    )


DEFAULT = policy()
FAST = policy(0.01, 0.32)
NOW = datetime(2015, 10, 21, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 32.0), (7, None), (8, None)],
)
def test_default_schedule(attempt: int, expected: float | None) -> None:
    assert DEFAULT.next_delay(attempt) == expected


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.01), (2, 0.02), (3, 0.04), (4, 0.08), (5, 0.16), (6, 0.32), (7, None)],
)
def test_scaled_base(attempt: int, expected: float | None) -> None:
    result = FAST.next_delay(attempt)
    assert result == expected if expected is None else result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("base", "cap", "attempts", "expected"),
    [
        (1, 32, 7, [1, 2, 4, 8, 16, 32]),
        (1, 32, 1, []),
        (1, 32, 2, [1]),
        (1, 32, 10, [1, 2, 4, 8, 16, 32, 32, 32, 32]),
        (5, 60, 6, [5, 10, 20, 40, 60]),
        (0, 0, 3, [0, 0]),
    ],
)
def test_schedule(base: float, cap: float, attempts: int, expected: list[float]) -> None:
    assert list(backoff_schedule(base, cap, attempts)) == expected
    assert policy(base, cap, attempts).max_attempts == attempts


def test_huge_attempt_numbers_cap_without_overflow() -> None:
    assert backoff(1.0, 32.0, 5000) == 32.0


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [
        (1, None, 1.0),
        (1, 10.0, 10.0),  # receiver asks for longer: honoured
        (3, 1.0, 4.0),  # shorter than the schedule: schedule wins
        (1, 120.0, 32.0),  # never beyond the policy's cap
        (1, math.inf, 32.0),
        (2, 0.0, 2.0),
        (2, -5.0, 2.0),  # negative ignored
        (2, math.nan, 2.0),  # NaN ignored
        (7, 10.0, None),  # exhausted regardless of Retry-After
    ],
)
def test_retry_after(attempt: int, retry_after: float | None, expected: float | None) -> None:
    assert DEFAULT.next_delay(attempt, retry_after=retry_after) == expected


@pytest.mark.parametrize(
    ("base", "cap", "attempts"),
    [(-1, 32, 7), (10, 5, 7), (1, 32, 0), (math.nan, 32, 7)],
)
def test_invalid_schedule(base: float, cap: float, attempts: int) -> None:
    with pytest.raises(ValueError):
        backoff_schedule(base, cap, attempts)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"retry_schedule": (1.0, -1.0)},
        {"retry_schedule": (math.inf,)},
        {"retry_after_cap": math.nan},
        {"max_in_flight": 0},
    ],
)
def test_invalid_policy(kwargs: dict[str, object]) -> None:
    fields = {
        "retry_schedule": (1.0,),
        "retry_after_cap": 32.0,
        "max_in_flight": 1,
        "request_timeout": 1.0,
        "connect_timeout": 1.0,
        **kwargs,
    }
    with pytest.raises(ValueError):
        EndpointPolicy(**fields)  # type: ignore[arg-type]


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError):
        DEFAULT.next_delay(0)
    with pytest.raises(ValueError):
        backoff(1.0, 32.0, 0)


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
    assert DEFAULT.next_delay(1, retry_after=wait) == 20.0
