"""Publishing: events and their delivery rows in one transaction, idempotent per tenant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import utcnow
from webhookd.delivery.schemas import DeliveryRow
from webhookd.delivery.service import DeliveryService, NewEvent, RoutableEvent
from webhookd.errors import AppError, Conflict, NotFound
from webhookd.event import repository
from webhookd.event.schemas import DeliverySummary, EventAccepted, EventCreate
from webhookd.ids import Kind, format_cached, format_id, new_id, parse_id
from webhookd.models import Attempt, DeliveryStatus, Event


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


async def publish_events(
    session: AsyncSession,
    *,
    deliveries: DeliveryService,
    batch: Sequence[tuple[int, EventCreate]],
) -> list[EventAccepted | AppError]:
    """Publish several (tenant_id, event) at once: one insert of the events (an event_id the
    tenant published before is a duplicate), then one fan-out of the new ones to their
    endpoints. Answers are in the order of ``batch``: the accepted event, or the error of
    that publish alone (an event_id published before with another type or payload). The
    engine is woken after commit."""
    now = utcnow()
    new: dict[tuple[int, str], NewEvent] = {}  # the same event twice in a batch: once
    for tenant_id, data in batch:
        key = (tenant_id, data.event_id)
        if key not in new:
            new[key] = NewEvent(
                new_id(), tenant_id, data.event_id, data.event_type, data.payload, data.channels
            )
    inserted = await deliveries.insert_events(session, list(new.values()), now)
    public_ids = {key: event.public_id for key, event in new.items()}
    new_events = {(e.tenant_id, e.event_id): e.id for e in inserted}
    to_route: dict[int, RoutableEvent] = {}  # the same event twice in one batch: routed once
    for tenant_id, data in batch:
        event_pk = new_events.get((tenant_id, data.event_id))
        if event_pk is not None and event_pk not in to_route:
            to_route[event_pk] = RoutableEvent(
                event_pk, tenant_id, data.event_type, data.payload, data.channels
            )
    by_event = await deliveries.enqueue_for_events(session, list(to_route.values()), now)
    results: list[EventAccepted | AppError] = []
    answered: set[tuple[int, str]] = set()  # the same event twice in one batch: one is new
    for tenant_id, data in batch:
        key = (tenant_id, data.event_id)
        event_pk = new_events.get(key)
        if event_pk is None or key in answered:
            results.append(await _existing(session, deliveries, tenant_id, data))
            continue
        answered.add(key)
        results.append(
            EventAccepted(
                id=format_id(Kind.EVENT, public_ids[key]),
                event_id=data.event_id,
                event_type=data.event_type,
                created_at=now,
                deliveries=[
                    DeliverySummary(
                        id=format_id(Kind.DELIVERY, d.delivery_id),
                        endpoint_id=format_cached(Kind.ENDPOINT, d.endpoint_id),
                        status=DeliveryStatus.PENDING,
                    )
                    for d in by_event.get(event_pk, ())
                ],
                duplicate=False,
            )
        )
    return results


async def _existing(
    session: AsyncSession, deliveries: DeliveryService, tenant_id: int, data: EventCreate
) -> EventAccepted | AppError:
    """The answer to an event_id published before: the original, if this is the same event
    again; a 409 if it is another one under the same event_id."""
    event = await repository.get(session, tenant_id=tenant_id, event_id=data.event_id)
    if event is None:  # the batch's other copy of this event was refused meanwhile
        return NotFound(f"event {data.event_id!r} not found")
    if event.event_type != data.event_type or event.payload != data.payload:
        what = "type" if event.event_type != data.event_type else "payload"
        return IdempotencyConflict(
            f"event_id {data.event_id!r} was already published with another {what}; "
            "publish a new event with a new event_id",
            fields=[{"field": "event_id", "location": "body", "message": f"another {what}"}],
        )
    states = await deliveries.delivery_states(session, tenant_id=tenant_id, event_pk=event.id)
    return EventAccepted(
        id=format_id(Kind.EVENT, event.public_id),
        event_id=event.event_id,
        event_type=event.event_type,
        created_at=event.created_at,
        deliveries=[
            DeliverySummary(
                id=format_id(Kind.DELIVERY, d),
                endpoint_id=format_id(Kind.ENDPOINT, e),
                status=s,
            )
            for d, e, s in states
        ],
        duplicate=True,
    )


async def get_event(session: AsyncSession, *, tenant_id: int, event_id: str) -> Event:
    """An event by the event_id it was published with, or by its own id (``evt_…``)."""
    event = await repository.get(session, tenant_id=tenant_id, event_id=event_id)
    if event is None:
        public_id = parse_id(Kind.EVENT, event_id)
        if public_id is not None:
            event = await repository.get_by_public_id(
                session, tenant_id=tenant_id, public_id=public_id
            )
    if event is None or event.operational:  # webhookd's own notices are not listed
        raise NotFound(f"event {event_id!r} not found")
    return event


async def list_events(
    session: AsyncSession,
    *,
    tenant_id: int,
    event_type: str | None,
    limit: int,
    before: int | None,
) -> list[Event]:
    return await repository.page(
        session, tenant_id=tenant_id, event_type=event_type, limit=limit, before=before
    )


async def event_deliveries(
    session: AsyncSession, *, deliveries: DeliveryService, tenant_id: int, event_id: str
) -> list[tuple[DeliveryRow, list[Attempt]]]:
    """The event's deliveries, each with its attempts in order."""
    event = await get_event(session, tenant_id=tenant_id, event_id=event_id)
    return await deliveries.deliveries_of_event(session, tenant_id=tenant_id, event_pk=event.id)


class EventPage(NamedTuple):
    """A page of an event search, and the cursor of the next one (None: no more)."""

    events: list[Event]
    before: int | None


async def search_events(
    session: AsyncSession,
    *,
    deliveries: DeliveryService,
    tenant_id: int,
    event_id: str | None,
    event_type: str | None,
    status: DeliveryStatus | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    before: int | None,
) -> EventPage:
    """The tenant's events matching every filter given, newest first: the one published
    with ``event_id`` (or with that ``evt_…`` id); those of ``event_type``; those with a
    delivery in ``status`` (from the deliveries listing, whose cursor is then a delivery
    id); those published in [since, until]."""
    if event_id is not None:
        return await _one_event(
            session,
            deliveries=deliveries,
            tenant_id=tenant_id,
            event_id=event_id,
            event_type=event_type,
            status=status,
            since=since,
            until=until,
            listed=before is not None,
        )
    if status is not None:
        pks, after = await deliveries.events_in_status(
            session,
            tenant_id=tenant_id,
            status=status,
            event_type=event_type,
            since=since,
            until=until,
            limit=limit,
            before=before,
        )
        found = {e.id: e for e in await repository.by_ids(session, tenant_id=tenant_id, ids=pks)}
        return EventPage([found[pk] for pk in pks if pk in found], after)
    events = await repository.search(
        session,
        tenant_id=tenant_id,
        event_type=event_type,
        since=since,
        until=until,
        limit=limit,
        before=before,
    )
    return EventPage(events, events[-1].id if len(events) == limit else None)


async def _one_event(
    session: AsyncSession,
    *,
    deliveries: DeliveryService,
    tenant_id: int,
    event_id: str,
    event_type: str | None,
    status: DeliveryStatus | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    listed: bool,
) -> EventPage:
    """The event ``event_id`` if it matches the other filters (a page of one: ``listed``
    means a next page was asked for, which is empty)."""
    try:
        event = await get_event(session, tenant_id=tenant_id, event_id=event_id)
    except NotFound:
        return EventPage([], None)
    matches = (
        not listed
        and (event_type is None or event.event_type == event_type)
        and (since is None or event.created_at >= since)
        and (until is None or event.created_at <= until)
    )
    if matches and status is not None:
        states = await deliveries.delivery_states(session, tenant_id=tenant_id, event_pk=event.id)
        matches = any(s == status for _, _, s in states)
    return EventPage([event] if matches else [], None)
