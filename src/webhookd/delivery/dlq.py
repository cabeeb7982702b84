"""The dead-letter queue: deliveries whose retries ran out, kept for inspection and retry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.delivery.fairness import to_key
from webhookd.errors import Conflict, NotFound
from webhookd.models import DeadLetter, Delivery, DeliveryStatus, Event

MAX_BULK_RETRY = 1000


def _scoped(tenant_id: int) -> Select[tuple[DeadLetter, str]]:
    return (
        select(DeadLetter, Event.event_id)
        .join(Event, Event.id == DeadLetter.event_id)
        .where(DeadLetter.tenant_id == tenant_id)
    )


def _filtered(
    query: Select[tuple[DeadLetter, str]],
    *,
    endpoint_id: int | None,
    event_type: str | None,
    resolved: bool | None,
) -> Select[tuple[DeadLetter, str]]:
    if endpoint_id is not None:
        query = query.where(DeadLetter.endpoint_id == endpoint_id)
    if event_type is not None:
        query = query.where(DeadLetter.event_type == event_type)
    if resolved is not None:
        query = query.where(DeadLetter.resolved.is_(resolved))
    return query


async def list_entries(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    event_type: str | None,
    resolved: bool | None,
    limit: int,
    cursor: int | None,
) -> list[tuple[DeadLetter, str]]:
    query = _filtered(
        _scoped(tenant_id), endpoint_id=endpoint_id, event_type=event_type, resolved=resolved
    )
    if cursor is not None:
        query = query.where(DeadLetter.id < cursor)
    rows = await session.execute(query.order_by(DeadLetter.id.desc()).limit(limit))
    return [(dl, eid) for dl, eid in rows]


async def get_entry(
    session: AsyncSession, *, tenant_id: int, entry_id: int
) -> tuple[DeadLetter, str]:
    row = (await session.execute(_scoped(tenant_id).where(DeadLetter.id == entry_id))).first()
    if row is None:
        raise NotFound(f"dead-letter entry {entry_id} not found")
    return row[0], row[1]


async def _requeue(session: AsyncSession, entries: Sequence[DeadLetter], now: dt.datetime) -> None:
    """Start a fresh delivery cycle for each entry; earlier attempts stay on record."""
    ids = [e.id for e in entries]
    delivery_ids = [e.delivery_id for e in entries]
    await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.status == DeliveryStatus.DEAD)
        .values(
            status=DeliveryStatus.PENDING,
            cycle=Delivery.cycle + 1,
            attempt_count=0,
            next_attempt_at=now,
            queue_key=to_key(now),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(DeadLetter)
        .where(DeadLetter.id.in_(ids))
        .values(resolved=True, resolution="retried", resolved_at=now)
        .execution_options(synchronize_session=False)
    )


async def retry_entry(session: AsyncSession, *, tenant_id: int, entry_id: int) -> int:
    entry, _ = await get_entry(session, tenant_id=tenant_id, entry_id=entry_id)
    if entry.resolved:
        raise Conflict(f"dead-letter entry {entry_id} is already resolved ({entry.resolution})")
    await _requeue(session, [entry], dt.datetime.now(dt.UTC))
    return entry.delivery_id


async def retry_matching(
    session: AsyncSession, *, tenant_id: int, endpoint_id: int | None, event_type: str | None
) -> list[int]:
    """Retry every unresolved entry matching the filter (up to MAX_BULK_RETRY per call)."""
    query = _filtered(
        _scoped(tenant_id), endpoint_id=endpoint_id, event_type=event_type, resolved=False
    )
    rows = await session.execute(query.order_by(DeadLetter.id).limit(MAX_BULK_RETRY))
    entries = [dl for dl, _ in rows]
    if entries:
        await _requeue(session, entries, dt.datetime.now(dt.UTC))
    return [e.delivery_id for e in entries]


async def discard_entry(
    session: AsyncSession, *, tenant_id: int, entry_id: int
) -> tuple[DeadLetter, str]:
    entry, event_id = await get_entry(session, tenant_id=tenant_id, entry_id=entry_id)
    if not entry.resolved:
        entry.resolved = True
        entry.resolution = "discarded"
        entry.resolved_at = dt.datetime.now(dt.UTC)
        await session.flush()
    return entry, event_id
