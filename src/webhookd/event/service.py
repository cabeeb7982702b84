"""Publishing: the event and its delivery rows in one transaction, idempotent per tenant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from webhookd.db import utcnow
from webhookd.delivery import fairness
from webhookd.endpoint.service import subscribed
from webhookd.errors import NotFound
from webhookd.event.inserts import NewDelivery, insert_deliveries, insert_events
from webhookd.event.schemas import DeliverySummary, EventAccepted, EventCreate
from webhookd.models import Attempt, Delivery, Endpoint, Event


@dataclass(frozen=True, slots=True)
class Published:
    accepted: EventAccepted
    delivery_ids: list[int]  # new deliveries to hand to the queue after commit


async def publish_events(
    session: AsyncSession, *, batch: Sequence[tuple[int, EventCreate]]
) -> list[Published]:
    """Publish several (tenant_id, event) at once: one multi-row insert of the events (a
    conflict on (tenant, event_id) means a duplicate), one routing query for the tenants
    with new events, one multi-row insert of the deliveries. Results are in the order of
    ``batch``."""
    now = utcnow()
    conn = await session.connection()  # Core on the hot path: no ORM unit of work needed
    inserted = await insert_events(conn, batch, now)
    new_events = {(t, e): pk for pk, t, e in inserted}
    endpoints, virtual_time = await _routing(conn, {t for _, t, _ in inserted}, now)
    routes: dict[tuple[int, str], list[int]] = {}
    rows: list[NewDelivery] = []
    routed: set[int] = set()  # the same event twice in one batch is delivered once
    for tenant_id, data in batch:
        event_pk = new_events.get((tenant_id, data.event_id))
        if event_pk is None or event_pk in routed:
            continue
        routed.add(event_pk)
        key = (tenant_id, data.event_type)
        if key not in routes:
            routes[key] = [
                endpoint_id
                for endpoint_id, types in endpoints.get(tenant_id, ())
                if subscribed(types, data.event_type)
            ]
        endpoint_ids = routes[key]
        if not endpoint_ids:
            continue
        queue_keys = fairness.CLOCK.assign(tenant_id, len(endpoint_ids), virtual_time)
        rows.extend(
            (tenant_id, event_pk, endpoint_id, queue_key)
            for endpoint_id, queue_key in zip(endpoint_ids, queue_keys, strict=True)
        )
    by_event: dict[int, list[DeliverySummary]] = {}
    if rows:
        for delivery_id, event_pk, endpoint_id in await insert_deliveries(conn, rows, now):
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


_ROUTING = (
    select(Endpoint.tenant_id, Endpoint.id, Endpoint.event_types, fairness.HEAD)
    .where(Endpoint.tenant_id.in_(bindparam("tenants", expanding=True)))
    .where(Endpoint.is_active.is_(True))
    .order_by(Endpoint.id)
)


async def _routing(
    conn: AsyncConnection, tenant_ids: set[int], now: dt.datetime
) -> tuple[dict[int, list[tuple[int, list[str] | None]]], int]:
    """The tenants' active endpoints as (id, event_types), and the queue's virtual time, in
    one round trip."""
    endpoints: dict[int, list[tuple[int, list[str] | None]]] = {}
    head: int | None = None
    if tenant_ids:
        rows = await conn.execute(_ROUTING, {"tenants": sorted(tenant_ids)})
        for tenant_id, endpoint_id, types, queue_head in rows:
            endpoints.setdefault(tenant_id, []).append((endpoint_id, types))
            head = queue_head  # the same on every row
    return endpoints, fairness.virtual_time(head, now)


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
