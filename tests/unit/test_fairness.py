"""Start-time fair queueing keys (delivery/fairness.py), as a table."""

from __future__ import annotations

import datetime as dt

import pytest

from webhookd.delivery.fairness import COST_US, FairClock, to_key

V = 1_000_000_000  # a virtual time, in µs


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (tenant, count, virtual time) -> keys
        ([(1, 3, V)], [[V, V + COST_US, V + 2 * COST_US]]),
        # a second tenant starts at V, not behind the first tenant's keys
        ([(1, 3, V), (2, 1, V)], [[V, V + COST_US, V + 2 * COST_US], [V]]),
        # the same tenant continues after its own last key
        ([(1, 2, V), (1, 1, V)], [[V, V + COST_US], [V + 2 * COST_US]]),
        # once the queue has moved past a tenant's keys, it starts at V again
        ([(1, 2, V), (1, 1, V + 10 * COST_US)], [[V, V + COST_US], [V + 10 * COST_US]]),
        ([(1, 0, V)], [[]]),
    ],
)
def test_keys(steps: list[tuple[int, int, int]], expected: list[list[int]]) -> None:
    clock = FairClock()
    assert [clock.assign(t, n, v) for t, n, v in steps] == expected


def test_flood_interleaves_with_a_newcomer() -> None:
    clock = FairClock()
    flood = clock.assign(1, 1000, V)
    newcomer = clock.assign(2, 1, V)
    assert sorted(flood + newcomer).index(newcomer[0]) <= 1


def test_to_key_is_microseconds() -> None:
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert to_key(moment + dt.timedelta(milliseconds=1)) - to_key(moment) == 1000
