"""The console's overview: what the deployment holds and how it is doing right now."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import utcnow
from webhookd.stats import repository
from webhookd.stats.sampler import Point, series

# window → (bucket, buckets): the last hour per minute, the last day per half hour
WINDOWS = {
    "hour": (dt.timedelta(minutes=1), 60),
    "day": (dt.timedelta(minutes=30), 48),
}


@dataclass(frozen=True, slots=True)
class Overview:
    tenants: int
    endpoints: int
    endpoints_disabled: int
    endpoints_circuit_open: int
    events_last_hour: int
    events_last_day: int
    retrying: int
    dead_letters: int
    backlog: int


async def overview(session: AsyncSession) -> Overview:
    now = utcnow()
    health = await repository.endpoint_health(session)
    return Overview(
        tenants=await repository.count_tenants(session),
        endpoints=health["total"],
        endpoints_disabled=health["disabled"],
        endpoints_circuit_open=health["circuit_open"],
        events_last_hour=await repository.count_events_since(
            session, since=now - dt.timedelta(hours=1)
        ),
        events_last_day=await repository.count_events_since(
            session, since=now - dt.timedelta(days=1)
        ),
        retrying=await repository.count_retrying(session),
        dead_letters=await repository.count_dead_letters(session),
        backlog=await repository.count_due(session, now=now),
    )


async def chart(session: AsyncSession, *, window: str) -> list[Point]:
    """The deployment's figures over ``window`` (hour, day), every process added up."""
    step, points = WINDOWS[window]
    now = utcnow()
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    end = epoch + ((now - epoch) // step + 1) * step
    start = end - step * points
    samples = await repository.samples_since(session, since=start)
    return series(samples, start=start, step=step, points=points)
