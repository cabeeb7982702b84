"""Reads of deliveries, attempts and dead letters, each scoped to a tenant."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import cross_tenant
from webhookd.models import Attempt, DeadLetter, Delivery, DeliveryStatus, Event


def _dead_letters(tenant_id: int) -> Select[DeadLetter, str]:
    return (
        select(DeadLetter, Event.event_id)
        .join(Event, Event.id == DeadLetter.event_id)
        .where(DeadLetter.tenant_id == tenant_id)
    )


def _filtered(
    query: Select[DeadLetter, str],
    *,
    endpoint_id: int | None,
    event_type: str | None,
    resolved: bool | None,
) -> Select[DeadLetter, str]:
    if endpoint_id is not None:
        query = query.where(DeadLetter.endpoint_id == endpoint_id)
    if event_type is not None:
        query = query.where(DeadLetter.event_type == event_type)
    if resolved is not None:
        query = query.where(DeadLetter.resolved.is_(resolved))
    return query


async def list_dead_letters(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    event_type: str | None,
    resolved: bool | None,
    limit: int,
    cursor: int | None,
) -> list[tuple[DeadLetter, str]]:
    """Newest first, with the publisher's event_id of each."""
    query = _filtered(
        _dead_letters(tenant_id), endpoint_id=endpoint_id, event_type=event_type, resolved=resolved
    )
    if cursor is not None:
        query = query.where(DeadLetter.id < cursor)
    rows = await session.execute(query.order_by(DeadLetter.id.desc()).limit(limit))
    return [(entry, event_id) for entry, event_id in rows]


async def unresolved_dead_letters(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    event_type: str | None,
    limit: int,
) -> list[DeadLetter]:
    """Oldest first."""
    query = _filtered(
        _dead_letters(tenant_id), endpoint_id=endpoint_id, event_type=event_type, resolved=False
    )
    rows = await session.execute(query.order_by(DeadLetter.id).limit(limit))
    return [entry for entry, _ in rows]


async def get_dead_letter(
    session: AsyncSession, *, tenant_id: int, entry_id: int
) -> tuple[DeadLetter, str] | None:
    query = _dead_letters(tenant_id).where(DeadLetter.id == entry_id)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def deliveries_of_event(
    session: AsyncSession, *, tenant_id: int, event_pk: int
) -> list[tuple[Delivery, list[Attempt]]]:
    """The event's deliveries in id order, each with its attempts in order."""
    query = (
        select(Delivery)
        .where(Delivery.tenant_id == tenant_id, Delivery.event_id == event_pk)
        .order_by(Delivery.id)
    )
    deliveries = list((await session.execute(query)).scalars())
    attempts: dict[int, list[Attempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        rows = await session.execute(
            select(Attempt)
            .where(Attempt.delivery_id.in_(attempts))
            .order_by(Attempt.delivery_id, Attempt.id)
        )
        for attempt in rows.scalars():
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries]


async def delivery_states(
    session: AsyncSession, *, tenant_id: int, event_pk: int
) -> list[tuple[int, int, DeliveryStatus]]:
    """(id, endpoint_id, status) of each delivery of the event, in id order."""
    rows = await session.execute(
        select(Delivery.id, Delivery.endpoint_id, Delivery.status)
        .where(Delivery.tenant_id == tenant_id, Delivery.event_id == event_pk)
        .order_by(Delivery.id)
    )
    return [(i, e, DeliveryStatus(s)) for i, e, s in rows]


@cross_tenant("a gauge of the whole deployment")
async def count_due(session: AsyncSession, *, now: dt.datetime) -> int:
    query = select(func.count()).select_from(Delivery).where(Delivery.next_attempt_at <= now)
    return int(await session.scalar(query) or 0)


@cross_tenant("a gauge of the whole deployment")
async def count_unresolved_dead_letters(session: AsyncSession) -> int:
    query = select(func.count()).select_from(DeadLetter).where(DeadLetter.resolved.is_(False))
    return int(await session.scalar(query) or 0)
