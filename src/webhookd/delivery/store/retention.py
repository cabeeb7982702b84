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

from sqlalchemy import ColumnElement, Executable, Select, delete, exists, func, select
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


def _kept_for(days: int | None) -> ColumnElement[bool]:
    """The event's tenant keeps ``days`` (None: the default). A correlated test, not an
    ``IN``: SQLite would otherwise read the events through the tenant index and sort them
    all, where the purge wants them in primary-key order from its cursor."""
    column = Tenant.retention_days
    return exists().where(
        Tenant.id == Event.tenant_id, column.is_(None) if days is None else column == days
    )


def _expired(cutoff: Cutoff) -> Select[int]:
    return select(Event.id).where(
        Event.created_at < cutoff.before, Event.tenant_id.in_(_tenants(cutoff.days)), ~_HAS_LIVE
    )


def _rowcount(result: Any) -> int:
    return max(int(result.rowcount), 0)


class Batch(NamedTuple):
    """One purge batch: what went, and the last event id it looked at, the cursor of the
    next batch (None: it found fewer than it could take, so nothing is left past it)."""

    purged: Purged
    last: int | None


class RetentionStore:
    lock_rows = False

    async def purge_batch(
        self, conn: AsyncConnection, *, cutoff: Cutoff, after: int, limit: int
    ) -> Batch:
        """Look at the next ``limit`` events past ``after`` that are older than ``cutoff``
        and delete those without a live delivery, with everything about them."""
        query = candidates(cutoff, after=after, limit=limit, lock=self.lock_rows)
        seen = list((await conn.execute(query)).scalars())
        if not seen:
            return Batch(Purged(), None)
        held = set((await conn.execute(live_among(seen))).scalars())
        ids = [event_id for event_id in seen if event_id not in held]
        purged = Purged()
        for table, statement in deletes(ids) if ids else ():
            setattr(purged, table, _rowcount(await conn.execute(statement)))
        return Batch(purged, seen[-1] if len(seen) == limit else None)

    async def purge_jobs(self, conn: AsyncConnection, *, cutoff: Cutoff) -> int:
        return _rowcount(await conn.execute(delete(BackgroundJob).where(_old_jobs(cutoff))))

    async def count_purgeable(self, conn: AsyncConnection, *, cutoff: Cutoff) -> Purged:
        """What a purge at ``cutoff`` would delete, counted in full (a dry run)."""
        return await _count(conn, cutoff)


def candidates(cutoff: Cutoff, *, after: int, limit: int, lock: bool) -> Select[int]:
    """The next ``limit`` events past the id ``after`` older than ``cutoff``, read by
    primary key from the cursor: old events come first, and those kept for a live
    delivery are not read again by the next batch."""
    query = (
        select(Event.id)
        .where(Event.id > after, Event.created_at < cutoff.before, _kept_for(cutoff.days))
        .order_by(Event.id)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True, of=Event) if lock else query


def live_among(ids: Sequence[int]) -> Select[int]:
    """Which of these events has a live delivery: one probe of ``ix_deliveries_event_id``
    per event, never a scan of the deliveries."""
    return select(Delivery.event_id).where(Delivery.event_id.in_(ids), _LIVE)


def deletes(ids: Sequence[int]) -> list[tuple[str, Executable]]:
    """The deletes of these events, child rows first, by table. Each is guarded against a
    delivery made live again since the candidates were read (a replay or a recovery)."""
    of_events = Delivery.event_id.in_(ids)
    finished = select(Delivery.id).where(of_events, ~_LIVE).scalar_subquery()
    return [
        ("dead_letters", delete(DeadLetter).where(DeadLetter.delivery_id.in_(finished))),
        ("attempts", delete(Attempt).where(Attempt.delivery_id.in_(finished))),
        ("deliveries", delete(Delivery).where(of_events, ~_LIVE)),
        ("events", delete(Event).where(Event.id.in_(ids), ~_HAS_LIVE)),
    ]


def _old_jobs(cutoff: Cutoff) -> ColumnElement[bool]:
    return (
        BackgroundJob.status.in_((JobStatus.SUCCEEDED, JobStatus.FAILED))
        & (BackgroundJob.finished_at < cutoff.before)
        & BackgroundJob.tenant_id.in_(_tenants(cutoff.days))
    )


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
