"""The console's chart history, pure parts: counter deltas, latency quantiles from histogram
buckets, and samples of several processes added up per bucket."""

from __future__ import annotations

import datetime as dt

import pytest

from webhookd import metrics
from webhookd.models import MetricSample
from webhookd.stats.sampler import delta, quantile_ms, series

WIDTH = len(metrics.DURATION_BUCKETS) + 1
T0 = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def totals(events: float, ok: float, failed: float, cumulative: list[float]) -> dict:
    return {"events": events, "succeeded": ok, "failed": failed, "buckets": cumulative}


def test_delta_turns_cumulative_buckets_into_counts() -> None:
    before = totals(10, 5, 1, [1, 2, 3] + [3] * (WIDTH - 3))
    now = totals(15, 9, 1, [2, 5, 7] + [7] * (WIDTH - 3))
    found = delta(now, before)
    assert (found["events"], found["succeeded"], found["failed"]) == (5, 4, 0)
    assert found["durations"][:3] == [1, 2, 1] and sum(found["durations"]) == 4


def test_delta_never_goes_negative() -> None:
    found = delta(totals(0, 0, 0, [0] * WIDTH), totals(3, 3, 3, [3] * WIDTH))
    assert found["events"] == 0 and all(c == 0 for c in found["durations"])


@pytest.mark.parametrize(
    ("counts", "q", "expected"),
    [
        ([0] * WIDTH, 0.5, None),
        ([10] + [0] * (WIDTH - 1), 0.5, 5.0),
        ([50, 50] + [0] * (WIDTH - 2), 0.5, 5.0),
        ([50, 50] + [0] * (WIDTH - 2), 0.99, 10.0),
        ([98, 0, 0, 0, 0, 0, 0, 2] + [0] * (WIDTH - 8), 0.99, 1000.0),
        ([0] * (WIDTH - 1) + [4], 0.5, 30000.0),  # past the last bound: at least it
    ],
)
def test_quantile_from_buckets(counts: list[int], q: float, expected: float | None) -> None:
    assert quantile_ms(counts, q) == expected


def sample(minute: float, process: str, **values: object) -> MetricSample:
    fields = {"events": 0, "succeeded": 0, "failed": 0, "durations": [0] * WIDTH} | values
    return MetricSample(process=process, at=T0 + dt.timedelta(minutes=minute), seconds=60, **fields)


def test_series_adds_up_processes_per_bucket() -> None:
    samples = [
        sample(0.5, "api", events=120, backlog=7, dead_letters=2),
        sample(0.6, "worker-1", succeeded=90, failed=10, durations=[100] + [0] * (WIDTH - 1)),
        sample(0.7, "worker-2", succeeded=60, durations=[0, 60] + [0] * (WIDTH - 2)),
        sample(2.5, "api", events=60),
        sample(-1, "api", events=999),  # before the window
        sample(10, "api", events=999),  # after it
    ]
    points = series(samples, start=T0, step=dt.timedelta(minutes=1), points=3)
    assert [p.at for p in points] == [T0 + dt.timedelta(minutes=m) for m in range(3)]
    first, empty, last = points
    assert first.events_per_second == 2.0 and first.deliveries_per_second == 2.667
    assert first.success_rate == round(150 / 160, 4)
    assert (first.p50_ms, first.p99_ms) == (5.0, 10.0)
    assert (first.backlog, first.dead_letters) == (7, 2)
    assert empty.events_per_second == 0 and empty.success_rate is None and empty.p50_ms is None
    assert last.events_per_second == 1.0
