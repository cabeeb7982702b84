"""Endpoint health, as tables: the breaker, 410 Gone, auto-disable and the claim gate."""

from __future__ import annotations

import datetime as dt

import pytest

from webhookd.delivery.health import (
    HEALTHY,
    Change,
    Gate,
    Health,
    Result,
    after_results,
    gate,
    probing,
)
from webhookd.delivery.policy import Breaker
from webhookd.models import Circuit, DisabledReason

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
BREAKER = Breaker(threshold=3, cooldown=30, max_cooldown=100, auto_disable_after=3600)
OK = Result(True, False, NOW)
FAIL = Result(False, False, NOW)
GONE = Result(False, True, NOW)


def later(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


OPEN_30 = Health(Circuit.OPEN, later(30), 30.0, 3, NOW)


@pytest.mark.parametrize(
    ("start", "results", "circuit", "failures", "changes"),
    [
        (HEALTHY, [OK, OK], Circuit.CLOSED, 0, []),
        (HEALTHY, [FAIL, FAIL], Circuit.CLOSED, 2, []),
        (HEALTHY, [FAIL, FAIL, FAIL], Circuit.OPEN, 3, [Change.OPENED]),
        (HEALTHY, [FAIL, FAIL, OK, FAIL, FAIL], Circuit.CLOSED, 2, []),  # consecutive only
        (HEALTHY, [FAIL] * 5, Circuit.OPEN, 5, [Change.OPENED]),  # opens once
        (OPEN_30, [OK], Circuit.CLOSED, 0, [Change.CLOSED]),
        (probing(OPEN_30, later(60)), [OK], Circuit.CLOSED, 0, [Change.CLOSED]),
        (probing(OPEN_30, later(60)), [FAIL], Circuit.OPEN, 4, [Change.OPENED]),
        (OPEN_30, [FAIL], Circuit.OPEN, 4, []),  # an attempt that was out when it opened
    ],
)
def test_breaker(
    start: Health, results: list[Result], circuit: Circuit, failures: int, changes: list[Change]
) -> None:
    after, made = after_results(start, results, BREAKER, NOW)
    assert (after.circuit, after.consecutive_failures, made) == (circuit, failures, changes)
    if circuit == Circuit.CLOSED and failures == 0:
        assert after == HEALTHY


@pytest.mark.parametrize(
    ("previous", "expected"),
    [(None, 30.0), (30.0, 60.0), (60.0, 100.0), (100.0, 100.0)],  # doubling up to the max
)
def test_cooldown_doubles_on_each_failed_probe(previous: float | None, expected: float) -> None:
    assert BREAKER.next_cooldown(previous) == expected
    if previous is not None:
        start = probing(Health(Circuit.OPEN, NOW, previous, 3, NOW), later(60))
        after, _ = after_results(start, [FAIL], BREAKER, NOW)
        assert after.circuit_cooldown == expected and after.circuit_until == later(expected)


def test_first_open_uses_the_base_cooldown() -> None:
    after, _ = after_results(HEALTHY, [FAIL] * 3, BREAKER, NOW)
    assert after.circuit_until == later(30) and after.circuit_cooldown == 30.0


@pytest.mark.parametrize(
    ("start", "results", "reason", "changes"),
    [
        (HEALTHY, [GONE], DisabledReason.GONE, [Change.DISABLED_GONE]),
        (OPEN_30, [GONE], DisabledReason.GONE, [Change.DISABLED_GONE]),
        (HEALTHY, [GONE, OK, FAIL], DisabledReason.GONE, [Change.DISABLED_GONE]),  # stays
        # failing for an hour without a success (failing_since an hour ago)
        (
            Health(consecutive_failures=1, failing_since=later(-3600)),
            [FAIL],
            DisabledReason.FAILING,
            [Change.DISABLED_FAILING],
        ),
        (Health(consecutive_failures=1, failing_since=later(-3599)), [FAIL], None, []),
        (Health(consecutive_failures=1, failing_since=later(-7200)), [OK], None, []),
    ],
)
def test_disable(
    start: Health, results: list[Result], reason: DisabledReason | None, changes: list[Change]
) -> None:
    after, made = after_results(start, results, BREAKER, NOW)
    assert after.disabled_reason == reason and made == changes


def test_failing_since_is_the_first_failure_after_a_success() -> None:
    first = Result(False, False, later(-10))
    after, _ = after_results(HEALTHY, [first, FAIL], BREAKER, NOW)
    assert after.failing_since == later(-10)


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        (HEALTHY, Gate.GO),
        (Health(consecutive_failures=2, failing_since=NOW), Gate.GO),
        (OPEN_30, Gate.DEFER),
        (Health(Circuit.OPEN, later(-1), 30.0, 3, NOW), Gate.PROBE),  # cooled down
        (probing(OPEN_30, later(10)), Gate.DEFER),  # a probe is out
        (probing(OPEN_30, later(-1)), Gate.PROBE),  # its deadline passed: another
        (Health(disabled_reason=DisabledReason.GONE), Gate.WAIT),
        (Health(Circuit.OPEN, later(10), 30.0, 3, NOW, DisabledReason.FAILING), Gate.WAIT),
    ],
)
def test_gate(health: Health, expected: Gate) -> None:
    assert gate(health, NOW) is expected
