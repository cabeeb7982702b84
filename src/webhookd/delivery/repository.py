"""Reads of deliveries, attempts and dead letters, each scoped to a tenant.

Rows come back with the public ids the API shows (the delivery's, its endpoint's) and the
publisher's event_id, so that no caller needs a second query for them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import cross_tenant
from webhookd.delivery.schemas import DeadLetterRow, DeliveryRow
from webhookd.models import (
    FAILING,
    Attempt,
    DeadLetter,
    Delivery,
    DeliveryStatus,
    Endpoint,
    EndpointKind,
    Event,
    Tenant,
)

FAILING_STATUSES = frozenset({DeliveryStatus.RETRYING, DeliveryStatus.DEAD})


def _deliveries(tenant_id: int) -> Select[Delivery, str, str, uuid.UUID]:
    return (
        select(Delivery, Event.event_id, Event.event_type, Endpoint.public_id)
        .join(Event, Event.id == Delivery.event_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.tenant_id == tenant_id, Endpoint.kind == EndpointKind.WEBHOOK)
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    statuses: Sequence[DeliveryStatus],
    since: dt.datetime | None,
    limit: int,
    before: int | None,
) -> list[DeliveryRow]:
    """Newest first (by row id, the position a cursor holds)."""
    query = _deliveries(tenant_id)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if statuses:
        query = query.where(Delivery.status.in_(list(statuses)))
        if set(statuses) <= FAILING_STATUSES:  # ix_deliveries_failing: its very predicate
            query = query.where(text(FAILING))
    if since is not None:
        query = query.where(Delivery.created_at >= since)
    if before is not None:
        query = query.where(Delivery.id < before)
    rows = await session.execute(query.order_by(Delivery.id.desc()).limit(limit))
    return [(d, e, t, p) for d, e, t, p in rows]


async def deliveries_of_event(
    session: AsyncSession, *, tenant_id: int, event_pk: int
) -> list[tuple[DeliveryRow, list[Attempt]]]:
    """The event's deliveries in id order, each with its attempts in order."""
    query = _deliveries(tenant_id).where(Delivery.event_id == event_pk).order_by(Delivery.id)
    deliveries = [(d, e, t, p) for d, e, t, p in await session.execute(query)]
    attempts: dict[int, list[Attempt]] = {row[0].id: [] for row in deliveries}
    if deliveries:
        found = await session.execute(
            select(Attempt)
            .where(Attempt.delivery_id.in_(attempts))
            .order_by(Attempt.delivery_id, Attempt.id)
        )
        for attempt in found.scalars():
            attempts[attempt.delivery_id].append(attempt)
    return [(row, attempts[row[0].id]) for row in deliveries]


async def delivery_states(
    session: AsyncSession, *, tenant_id: int, event_pk: int
) -> list[tuple[uuid.UUID, uuid.UUID, DeliveryStatus]]:
    """(public id, endpoint's public id, status) of each delivery of the event, in id order."""
    rows = await session.execute(
        select(Delivery.public_id, Endpoint.public_id, Delivery.status)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.tenant_id == tenant_id, Delivery.event_id == event_pk)
        .order_by(Delivery.id)
    )
    return [(d, e, DeliveryStatus(s)) for d, e, s in rows]


def _dead_letters(tenant_id: int) -> DeadLetterQuery:
    return (
        select(DeadLetter, Event.event_id, Delivery.public_id, Endpoint.public_id)
        .join(Event, Event.id == DeadLetter.event_id)
        .join(Delivery, Delivery.id == DeadLetter.delivery_id)
        .join(Endpoint, Endpoint.id == DeadLetter.endpoint_id)
        .where(DeadLetter.tenant_id == tenant_id, Endpoint.kind == EndpointKind.WEBHOOK)
    )


DeadLetterQuery = Select[DeadLetter, str, uuid.UUID, uuid.UUID]


def _filtered(
    query: DeadLetterQuery,
    *,
    endpoint_id: int | None,
    event_type: str | None,
    resolved: bool | None,
) -> DeadLetterQuery:
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
    before: int | None,
) -> list[DeadLetterRow]:
    """Newest first."""
    query = _filtered(
        _dead_letters(tenant_id), endpoint_id=endpoint_id, event_type=event_type, resolved=resolved
    )
    if before is not None:
        query = query.where(DeadLetter.id < before)
    rows = await session.execute(query.order_by(DeadLetter.id.desc()).limit(limit))
    return [(entry, e, d, p) for entry, e, d, p in rows]


async def unresolved_dead_letters(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    event_type: str | None,
    limit: int,
) -> list[DeadLetterRow]:
    """Oldest first."""
    query = _filtered(
        _dead_letters(tenant_id), endpoint_id=endpoint_id, event_type=event_type, resolved=False
    )
    rows = await session.execute(query.order_by(DeadLetter.id).limit(limit))
    return [(entry, e, d, p) for entry, e, d, p in rows]


async def get_dead_letter(
    session: AsyncSession, *, tenant_id: int, public_id: uuid.UUID
) -> DeadLetterRow | None:
    query = _dead_letters(tenant_id).where(DeadLetter.public_id == public_id)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


@cross_tenant("a gauge of the whole deployment")
async def count_due(session: AsyncSession, *, now: dt.datetime) -> int:
    query = select(func.count()).select_from(Delivery).where(Delivery.next_attempt_at <= now)
    return int(await session.scalar(query) or 0)


@cross_tenant("a gauge of the whole deployment")
async def count_unresolved_dead_letters(session: AsyncSession) -> int:
    query = select(func.count()).select_from(DeadLetter).where(DeadLetter.resolved.is_(False))
    return int(await session.scalar(query) or 0)


async def event_deliveries(
    session: AsyncSession, *, tenant_id: int, event_pk: int
) -> list[tuple[int, uuid.UUID, int, uuid.UUID, DeliveryStatus]]:
    """(row id, public id, endpoint's row id, endpoint's public id, status) of each
    delivery of the event to a webhook endpoint, in id order."""
    rows = await session.execute(
        select(Delivery.id, Delivery.public_id, Endpoint.id, Endpoint.public_id, Delivery.status)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(
            Delivery.tenant_id == tenant_id,
            Delivery.event_id == event_pk,
            Endpoint.kind == EndpointKind.WEBHOOK,
        )
        .order_by(Delivery.id)
    )
    return [(i, p, e, ep, DeliveryStatus(s)) for i, p, e, ep, s in rows]


async def get_delivery(
    session: AsyncSession, *, tenant_id: int, public_id: uuid.UUID
) -> tuple[DeliveryRow, list[Attempt]] | None:
    """A delivery by its public id, with its attempts in order."""
    row = (
        await session.execute(_deliveries(tenant_id).where(Delivery.public_id == public_id))
    ).first()
    if row is None:
        return None
    attempts = await session.scalars(
        select(Attempt).where(Attempt.delivery_id == row[0].id).order_by(Attempt.id)
    )
    return (row[0], row[1], row[2], row[3]), list(attempts)


def _to_recover(
    tenant_id: int, endpoint_id: int, since: dt.datetime, until: dt.datetime
) -> Select[int, int]:
    return select(DeadLetter.id, DeadLetter.delivery_id).where(
        DeadLetter.tenant_id == tenant_id,
        DeadLetter.endpoint_id == endpoint_id,
        DeadLetter.resolved.is_(False),
        DeadLetter.created_at >= since,
        DeadLetter.created_at <= until,
    )


async def count_to_recover(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int,
    since: dt.datetime,
    until: dt.datetime,
) -> int:
    """Unresolved dead-letter entries of the endpoint created in [since, until]."""
    query = _to_recover(tenant_id, endpoint_id, since, until)
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def dead_letters_to_recover(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int,
    since: dt.datetime,
    until: dt.datetime,
    after: int,
    limit: int,
) -> list[tuple[int, int]]:
    """(entry id, delivery id) of the next ``limit`` such entries after entry ``after``,
    in id order."""
    query = _to_recover(tenant_id, endpoint_id, since, until).where(DeadLetter.id > after)
    rows = await session.execute(query.order_by(DeadLetter.id).limit(limit))
    return [(entry, delivery) for entry, delivery in rows]


# -- the operator console ----------------------------------------------------------------


async def event_hits(
    session: AsyncSession,
    *,
    tenant_id: int,
    statuses: Sequence[DeliveryStatus],
    event_type: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    before: int | None,
) -> list[tuple[int, int]]:
    """(delivery id, event row id) of the tenant's deliveries to webhook endpoints in one of
    ``statuses`` whose event has this type and was published in [since, until], newest
    delivery first (the listing of :func:`list_deliveries`, by the same index)."""
    query = (
        select(Delivery.id, Delivery.event_id)
        .join(Event, Event.id == Delivery.event_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(
            Delivery.tenant_id == tenant_id,
            Endpoint.kind == EndpointKind.WEBHOOK,
            Delivery.status.in_(list(statuses)),
        )
    )
    if set(statuses) <= FAILING_STATUSES:  # ix_deliveries_failing: its very predicate
        query = query.where(text(FAILING))
    if event_type is not None:
        query = query.where(Event.event_type == event_type)
    if since is not None:
        query = query.where(Event.created_at >= since)
    if until is not None:
        query = query.where(Event.created_at <= until)
    if before is not None:
        query = query.where(Delivery.id < before)
    rows = await session.execute(query.order_by(Delivery.id.desc()).limit(limit))
    return [(delivery, event) for delivery, event in rows]


async def events_hit_from(
    session: AsyncSession,
    *,
    tenant_id: int,
    event_pks: Sequence[int],
    statuses: Sequence[DeliveryStatus],
    from_id: int,
) -> set[int]:
    """Those of ``event_pks`` (event row ids) with a delivery in one of ``statuses`` whose
    id is ``from_id`` or more: the events an earlier page of :func:`event_hits` listed."""
    if not event_pks:
        return set()
    query = select(Delivery.event_id).where(
        Delivery.tenant_id == tenant_id,
        Delivery.event_id.in_(list(event_pks)),
        Delivery.status.in_(list(statuses)),
        Delivery.id >= from_id,
    )
    return set(await session.scalars(query.distinct()))


LiveRow = tuple[Delivery, str, str, uuid.UUID, uuid.UUID, str]


@cross_tenant("the operator's live view of the newest deliveries of every tenant")
async def latest_deliveries(session: AsyncSession, *, limit: int) -> list[LiveRow]:
    """(delivery, event_id, event_type, endpoint's public id, tenant's public id, tenant's
    name) of the newest deliveries to webhook endpoints, newest first."""
    query = (
        select(
            Delivery,
            Event.event_id,
            Event.event_type,
            Endpoint.public_id,
            Tenant.public_id,
            Tenant.name,
        )
        .join(Event, Event.id == Delivery.event_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .join(Tenant, Tenant.id == Delivery.tenant_id)
        .where(Endpoint.kind == EndpointKind.WEBHOOK)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    rows = await session.execute(query)
    return [(d, e, t, p, tp, tn) for d, e, t, p, tp, tn in rows]


def _to_retry(
    tenant_id: int, endpoint_id: int | None, event_type: str | None, until: dt.datetime
) -> Select[int, int]:
    query = (
        select(DeadLetter.id, DeadLetter.delivery_id)
        .join(Endpoint, Endpoint.id == DeadLetter.endpoint_id)
        .where(
            DeadLetter.tenant_id == tenant_id,
            DeadLetter.resolved.is_(False),
            DeadLetter.created_at <= until,
            Endpoint.kind == EndpointKind.WEBHOOK,
        )
    )
    if endpoint_id is not None:
        query = query.where(DeadLetter.endpoint_id == endpoint_id)
    if event_type is not None:
        query = query.where(DeadLetter.event_type == event_type)
    return query


async def count_to_retry(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    event_type: str | None,
    until: dt.datetime,
) -> int:
    """Unresolved dead-letter entries of the tenant (of the endpoint, of the event type)
    created up to ``until``."""
    query = _to_retry(tenant_id, endpoint_id, event_type, until)
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def dead_letters_to_retry(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    event_type: str | None,
    until: dt.datetime,
    after: int,
    limit: int,
) -> list[tuple[int, int]]:
    """(entry id, delivery id) of the next ``limit`` such entries after entry ``after``,
    in id order."""
    query = _to_retry(tenant_id, endpoint_id, event_type, until).where(DeadLetter.id > after)
    rows = await session.execute(query.order_by(DeadLetter.id).limit(limit))
    return [(entry, delivery) for entry, delivery in rows]
