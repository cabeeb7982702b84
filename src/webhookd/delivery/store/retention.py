"""Retention: delete what is older than its tenant keeps, in bounded batches.

An event goes with everything about it (its deliveries, their attempts and dead-letter
entries) once it is older than its tenant's cutoff and none of its deliveries is live.
Each batch is one transaction of at most ``limit`` events, so a purge of millions of rows
never holds locks or a snapshot for long. The deletes run child first, each guarded
against a delivery made live again meanwhile (a replay or a recovery): such a delivery,
its attempts and its event are kept.

Where several processes purge (PostgreSQL), each batch takes its events ``FOR UPDATE
SKIP LOCKED``: two purgers share the work instead of waiting for each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from webhookd.models import (
    LIVE_STATUSES,
    Attempt,
    BackgroundJob,
    DeadLetter,
    Delivery,
    Event,
    JobStatus,
    Tenant,
)


class Cutoff(NamedTuple):
    """Delete what is older than ``before`` for the tenants whose ``retention_days`` is
    ``days`` (None: the tenants on the default retention)."""

    days: int | None
    before: dt.datetime


@dataclasses.dataclass(slots=True)
class Purged:
    """Rows deleted (or, on a dry run, that would be), by table."""

    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    dead_letters: int = 0
    jobs: int = 0

    def add(self, other: Purged) -> None:
        for field in dataclasses.fields(self):
            name = field.name
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


_LIVE = Delivery.status.in_(LIVE_STATUSES)
_HAS_LIVE = exists().where(Delivery.event_id == Event.id, _LIVE)


def _tenants(days: int | None) -> Select[int]:
    """The ids of the tenants whose retention is ``days`` (None: the default)."""
    column = Tenant.retention_days
    return select(Tenant.id).where(column.is_(None) if days is None else column == days)


def _expired(cutoff: Cutoff) -> Select[int]:
    return select(Event.id).where(
        Event.created_at < cutoff.before, Event.tenant_id.in_(_tenants(cutoff.days)), ~_HAS_LIVE
    )


def _rowcount(result: Any) -> int:
    return max(int(result.rowcount), 0)


class RetentionStore:
    lock_rows = False

    async def purge(
        self,
        conn: AsyncConnection,
        *,
        cutoffs: Sequence[Cutoff],
        limit: int,
        dry_run: bool = False,
    ) -> Purged:
        purged = Purged()
        for cutoff in cutoffs:
            if dry_run:
                purged.add(await _count(conn, cutoff))
                continue
            room = limit - purged.events
            if room > 0:
                purged.add(await self._purge_events(conn, cutoff, room))
            purged.jobs += await _purge_jobs(conn, cutoff)
        return purged

    async def _purge_events(self, conn: AsyncConnection, cutoff: Cutoff, limit: int) -> Purged:
        query = _expired(cutoff).order_by(Event.id).limit(limit)
        if self.lock_rows:
            query = query.with_for_update(skip_locked=True, of=Event)
        ids = list((await conn.execute(query)).scalars())
        if not ids:
            return Purged()
        of_events = Delivery.event_id.in_(ids)
        finished = select(Delivery.id).where(of_events, ~_LIVE).scalar_subquery()
        purged = Purged()
        purged.dead_letters = _rowcount(
            await conn.execute(delete(DeadLetter).where(DeadLetter.delivery_id.in_(finished)))
        )
        purged.attempts = _rowcount(
            await conn.execute(delete(Attempt).where(Attempt.delivery_id.in_(finished)))
        )
        purged.deliveries = _rowcount(await conn.execute(delete(Delivery).where(of_events, ~_LIVE)))
        purged.events = _rowcount(
            await conn.execute(delete(Event).where(Event.id.in_(ids), ~_HAS_LIVE))
        )
        return purged


def _old_jobs(cutoff: Cutoff) -> ColumnElement[bool]:
    return (
        BackgroundJob.status.in_((JobStatus.SUCCEEDED, JobStatus.FAILED))
        & (BackgroundJob.finished_at < cutoff.before)
        & BackgroundJob.tenant_id.in_(_tenants(cutoff.days))
    )


async def _purge_jobs(conn: AsyncConnection, cutoff: Cutoff) -> int:
    return _rowcount(await conn.execute(delete(BackgroundJob).where(_old_jobs(cutoff))))


async def _count(conn: AsyncConnection, cutoff: Cutoff) -> Purged:
    """What a purge at ``cutoff`` would delete, counted in full."""
    events = _expired(cutoff).subquery()
    deliveries = select(Delivery.id).where(Delivery.event_id.in_(select(events.c.id)))

    async def count(query: Select[Any]) -> int:
        return int(await conn.scalar(select(func.count()).select_from(query.subquery())) or 0)

    return Purged(
        events=await count(select(events.c.id)),
        deliveries=await count(deliveries),
        attempts=await count(select(Attempt.id).where(Attempt.delivery_id.in_(deliveries))),
        dead_letters=await count(
            select(DeadLetter.id).where(DeadLetter.delivery_id.in_(deliveries))
        ),
        jobs=await count(select(BackgroundJob.id).where(_old_jobs(cutoff))),
    )
