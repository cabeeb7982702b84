"""Publishing: events and their delivery rows in one transaction, idempotent per tenant."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import utcnow
from webhookd.delivery.service import DeliveryService, NewEvent, RoutableEvent
from webhookd.errors import NotFound
from webhookd.event import repository
from webhookd.event.schemas import DeliverySummary, EventAccepted, EventCreate
from webhookd.models import Attempt, Delivery, DeliveryStatus, Event


async def publish_events(
    session: AsyncSession,
    *,
    deliveries: DeliveryService,
    batch: Sequence[tuple[int, EventCreate]],
) -> list[EventAccepted]:
    """Publish several (tenant_id, event) at once: one insert of the events (an event_id the
    tenant published before is a duplicate), then one fan-out of the new ones to their
    endpoints. Answers are in the order of ``batch``; the engine is woken after commit."""
    now = utcnow()
    inserted = await deliveries.insert_events(
        session,
        [NewEvent(t, data.event_id, data.event_type, data.payload) for t, data in batch],
        now,
    )
    new_events = {(e.tenant_id, e.event_id): e.id for e in inserted}
    to_route: dict[int, RoutableEvent] = {}  # the same event twice in one batch: routed once
    for tenant_id, data in batch:
        event_pk = new_events.get((tenant_id, data.event_id))
        if event_pk is not None and event_pk not in to_route:
            to_route[event_pk] = RoutableEvent(event_pk, tenant_id, data.event_type)
    by_event = await deliveries.enqueue_for_events(session, list(to_route.values()), now)
    results: list[EventAccepted] = []
    answered: set[tuple[int, str]] = set()  # the same event twice in one batch: one is new
    for tenant_id, data in batch:
        key = (tenant_id, data.event_id)
        event_pk = new_events.get(key)
        if event_pk is None or key in answered:
            results.append(await _existing(session, deliveries, tenant_id, data.event_id))
            continue
        answered.add(key)
        results.append(
            EventAccepted(
                id=event_pk,
                event_id=data.event_id,
                event_type=data.event_type,
                created_at=now,
                deliveries=[
                    DeliverySummary(
                        id=ref.id, endpoint_id=ref.endpoint_id, status=DeliveryStatus.PENDING
                    )
                    for ref in by_event.get(event_pk, ())
                ],
                duplicate=False,
            )
        )
    return results


async def _existing(
    session: AsyncSession, deliveries: DeliveryService, tenant_id: int, event_id: str
) -> EventAccepted:
    event = await get_event(session, tenant_id=tenant_id, event_id=event_id)
    states = await deliveries.delivery_states(session, tenant_id=tenant_id, event_pk=event.id)
    return EventAccepted(
        id=event.id,
        event_id=event.event_id,
        event_type=event.event_type,
        created_at=event.created_at,
        deliveries=[DeliverySummary(id=i, endpoint_id=e, status=s) for i, e, s in states],
        duplicate=True,
    )


async def get_event(session: AsyncSession, *, tenant_id: int, event_id: str) -> Event:
    event = await repository.get(session, tenant_id=tenant_id, event_id=event_id)
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
    return await repository.page(
        session, tenant_id=tenant_id, event_type=event_type, limit=limit, cursor=cursor
    )


async def event_deliveries(
    session: AsyncSession, *, deliveries: DeliveryService, tenant_id: int, event_id: str
) -> list[tuple[Delivery, list[Attempt]]]:
    """The event's deliveries, each with its attempts in order."""
    event = await get_event(session, tenant_id=tenant_id, event_id=event_id)
    return await deliveries.deliveries_of_event(session, tenant_id=tenant_id, event_pk=event.id)
