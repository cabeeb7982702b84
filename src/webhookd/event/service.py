"""Publishing: the event and its delivery rows in one transaction, idempotent per tenant."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import utcnow
from webhookd.delivery import fairness
from webhookd.endpoint.service import matching_endpoint_ids
from webhookd.errors import NotFound
from webhookd.event.inserts import insert_deliveries, insert_events
from webhookd.event.schemas import DeliverySummary, EventAccepted, EventCreate
from webhookd.models import Attempt, Delivery, DeliveryStatus, Event


@dataclass(frozen=True, slots=True)
class Published:
    accepted: EventAccepted
    delivery_ids: list[int]  # new deliveries to hand to the queue after commit


async def publish_events(
    session: AsyncSession, *, batch: Sequence[tuple[int, EventCreate]]
) -> list[Published]:
    """Publish several (tenant_id, event) at once: one multi-row insert of the events (a
    conflict on (tenant, event_id) means a duplicate), one routing query per tenant, one
    multi-row insert of the deliveries. Results are in the order of ``batch``."""
    now = utcnow()
    conn = await session.connection()  # Core on the hot path: no ORM unit of work needed
    inserted = await insert_events(conn, batch, now)
    new_events = {(t, e): pk for pk, t, e in inserted}
    routes: dict[tuple[int, str], list[int]] = {}
    rows: list[dict[str, object]] = []
    routed: set[int] = set()  # the same event twice in one batch is delivered once
    virtual_time: int | None = None
    for tenant_id, data in batch:
        event_pk = new_events.get((tenant_id, data.event_id))
        if event_pk is None or event_pk in routed:
            continue
        routed.add(event_pk)
        key = (tenant_id, data.event_type)
        if key not in routes:
            routes[key] = await matching_endpoint_ids(
                session, tenant_id=tenant_id, event_type=data.event_type
            )
        endpoint_ids = routes[key]
        if not endpoint_ids:
            continue
        if virtual_time is None:
            virtual_time = await fairness.virtual_time(conn, now)
        queue_keys = fairness.CLOCK.assign(tenant_id, len(endpoint_ids), virtual_time)
        rows.extend(
            {
                "tenant_id": tenant_id,
                "event_id": event_pk,
                "endpoint_id": endpoint_id,
                "status": DeliveryStatus.PENDING,
                "attempt_count": 0,
                "cycle": 1,
                "next_attempt_at": now,
                "queue_key": queue_key,
                "created_at": now,
                "updated_at": now,
            }
            for endpoint_id, queue_key in zip(endpoint_ids, queue_keys, strict=True)
        )
    by_event: dict[int, list[DeliverySummary]] = {}
    if rows:
        for delivery_id, event_pk, endpoint_id in await insert_deliveries(conn, rows):
            by_event.setdefault(event_pk, []).append(
                DeliverySummary(id=delivery_id, endpoint_id=endpoint_id, status="pending")
            )
    results: list[Published] = []
    claimed: set[tuple[int, str]] = set()  # the same event twice in one batch: one is new
    for tenant_id, data in batch:
        key = (tenant_id, data.event_id)
        event_pk = new_events.get(key)
        if event_pk is None or key in claimed:
            existing = await _existing(session, tenant_id=tenant_id, event_id=data.event_id)
            results.append(Published(existing, []))
            continue
        claimed.add(key)
        summaries = by_event.get(event_pk, [])
        accepted = EventAccepted(
            id=event_pk,
            event_id=data.event_id,
            event_type=data.event_type,
            created_at=now,
            deliveries=summaries,
            duplicate=False,
        )
        results.append(Published(accepted, [d.id for d in summaries]))
    return results


async def _existing(session: AsyncSession, *, tenant_id: int, event_id: str) -> EventAccepted:
    event = await get_event(session, tenant_id=tenant_id, event_id=event_id)
    rows = await session.execute(
        select(Delivery.id, Delivery.endpoint_id, Delivery.status)
        .where(Delivery.event_id == event.id)
        .order_by(Delivery.id)
    )
    return EventAccepted(
        id=event.id,
        event_id=event.event_id,
        event_type=event.event_type,
        created_at=event.created_at,
        deliveries=[DeliverySummary(id=i, endpoint_id=e, status=s) for i, e, s in rows],
        duplicate=True,
    )


async def get_event(session: AsyncSession, *, tenant_id: int, event_id: str) -> Event:
    event = await session.scalar(
        select(Event).where(Event.tenant_id == tenant_id, Event.event_id == event_id)
    )
    if event is None:
        raise NotFound(f"event {event_id!r} not found")
    return event


async def list_events(
    session: AsyncSession,
    *,
    tenant_id: int,
    event_type: str | None,
    limit: int,
    cursor: int | None,
) -> list[Event]:
    query = select(Event).where(Event.tenant_id == tenant_id).order_by(Event.id.desc()).limit(limit)
    if event_type:
        query = query.where(Event.event_type == event_type)
    if cursor is not None:
        query = query.where(Event.id < cursor)
    return list((await session.execute(query)).scalars())


async def event_deliveries(
    session: AsyncSession, *, tenant_id: int, event_id: str
) -> list[tuple[Delivery, list[Attempt]]]:
    """The event's deliveries, each with its attempts in order."""
    event = await get_event(session, tenant_id=tenant_id, event_id=event_id)
    deliveries = list(
        (
            await session.execute(
                select(Delivery).where(Delivery.event_id == event.id).order_by(Delivery.id)
            )
        ).scalars()
    )
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
