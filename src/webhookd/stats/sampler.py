"""History for the console's charts: every ``WEBHOOKD_METRICS_SAMPLE_INTERVAL`` seconds each
process (API, Celery worker) writes what its Prometheus counters counted since its last
sample (events published, attempts succeeded and failed, attempt durations per bucket), and
the API process the backlog and the dead-letter size. The overview adds up the processes'
samples per minute (last hour) or per half hour (last day)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import structlog

from webhookd import metrics
from webhookd.db import Database, utcnow
from webhookd.logging import log_failure
from webhookd.models import MetricSample
from webhookd.stats import repository

log = structlog.get_logger("webhookd.stats")
KEEP = dt.timedelta(days=2)


def process_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def delta(now: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What the counters counted between two ``metrics.totals()`` (never negative)."""
    return {
        "events": max(0, round(now["events"] - before["events"])),
        "succeeded": max(0, round(now["succeeded"] - before["succeeded"])),
        "failed": max(0, round(now["failed"] - before["failed"])),
        # cumulative buckets → attempts per bucket
        "durations": [
            max(
                0,
                round(
                    (now["buckets"][i] - before["buckets"][i])
                    - ((now["buckets"][i - 1] - before["buckets"][i - 1]) if i else 0)
                ),
            )
            for i in range(len(now["buckets"]))
        ],
    }


class Sampler:
    def __init__(self, db: Database, *, interval: float, database_state: bool) -> None:
        self.db = db
        self.interval = interval
        self.database_state = database_state  # the API samples backlog and DLQ size
        self.process = process_name()
        self._last = metrics.totals()
        self._last_at = utcnow()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="webhookd-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # what was counted since the last sample
            await asyncio.wait_for(self.sample(), timeout=5)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sample()
            except Exception as exc:
                log_failure(log, "stats.sample_failed", exc)

    async def sample(self) -> None:
        now, totals = utcnow(), metrics.totals()
        counted = delta(totals, self._last)
        async with self.db.write() as session:
            row = MetricSample(
                process=self.process,
                at=now,
                seconds=max((now - self._last_at).total_seconds(), 1e-3),
                **counted,
            )
            if self.database_state:
                row.backlog = await repository.count_due(session, now=now)
                row.dead_letters = await repository.count_dead_letters(session)
            await repository.insert_sample(session, row)
            await repository.delete_samples_before(session, before=now - KEEP)
        self._last, self._last_at = totals, now


@dataclass(frozen=True, slots=True)
class Point:
    at: dt.datetime  # the start of the bucket
    events_per_second: float
    deliveries_per_second: float
    success_rate: float | None  # null: no attempt
    p50_ms: float | None
    p99_ms: float | None
    backlog: int | None
    dead_letters: int | None


def quantile_ms(durations: list[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding quantile ``q`` of these attempts."""
    total = sum(durations)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(durations):
        seen += count
        if seen >= rank:
            bounds = metrics.DURATION_BUCKETS
            return bounds[min(index, len(bounds) - 1)] * 1000  # past the last: at least it
    return None


@dataclass(slots=True)
class _Bucket:
    events: int = 0
    succeeded: int = 0
    failed: int = 0
    durations: list[int] = field(default_factory=list)
    backlog: int | None = None
    dead_letters: int | None = None

    def add(self, sample: MetricSample) -> None:
        self.events += sample.events
        self.succeeded += sample.succeeded
        self.failed += sample.failed
        for i, count in enumerate(sample.durations[: len(self.durations)]):
            self.durations[i] += count
        if sample.backlog is not None:
            self.backlog = sample.backlog
        if sample.dead_letters is not None:
            self.dead_letters = sample.dead_letters


def series(
    samples: list[MetricSample], *, start: dt.datetime, step: dt.timedelta, points: int
) -> list[Point]:
    """The samples added up into ``points`` buckets of ``step`` from ``start``."""
    width = len(metrics.DURATION_BUCKETS) + 1
    buckets = [_Bucket(durations=[0] * width) for _ in range(points)]
    for sample in samples:
        index = int((sample.at - start) / step)
        if 0 <= index < points:
            buckets[index].add(sample)
    seconds = step.total_seconds()
    out = []
    for index, bucket in enumerate(buckets):
        attempts = bucket.succeeded + bucket.failed
        out.append(
            Point(
                at=start + index * step,
                events_per_second=round(bucket.events / seconds, 3),
                deliveries_per_second=round(attempts / seconds, 3),
                success_rate=round(bucket.succeeded / attempts, 4) if attempts else None,
                p50_ms=quantile_ms(bucket.durations, 0.5),
                p99_ms=quantile_ms(bucket.durations, 0.99),
                backlog=bucket.backlog,
                dead_letters=bucket.dead_letters,
            )
        )
    return out
