from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from webhookd.api.deps import DeliveriesDep, RuntimeDep, SessionDep, TenantDep
from webhookd.api.route import OrjsonRoute
from webhookd.delivery.schemas import AttemptRead
from webhookd.event import service
from webhookd.event.ingest import accept
from webhookd.event.schemas import (
    DeliveryDetail,
    EventAccepted,
    EventCreate,
    EventIdPath,
    EventRead,
)
from webhookd.schemas import EventType, IdQuery, Page

router = APIRouter(prefix="/api/v1/events", tags=["events"], route_class=OrjsonRoute)


@router.post(
    "",
    status_code=202,
    response_model=EventAccepted,
    responses={
        200: {"model": EventAccepted, "description": "Duplicate event_id: the original event"},
    },
)
async def publish_event(data: EventCreate, tenant: TenantDep, runtime: RuntimeDep) -> Response:
    """Publish an event to every subscribed endpoint of the tenant.

    The event and its deliveries are committed before this answers 202. Publishing the same
    event_id again answers 200 with the original event and ``duplicate: true``.
    """
    # The answer is serialised once by pydantic-core (``response_model`` stays for the OpenAPI
    # schema). Well-formed publishes with a recently authenticated key are served by
    # event/ingest.py's fast path.
    status, content, headers = await accept(runtime, tenant, data)
    return Response(content, status_code=status, headers=headers, media_type="application/json")


@router.get("", response_model=Page[EventRead])
async def list_events(
    tenant: TenantDep,
    session: SessionDep,
    event_type: Annotated[EventType | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: IdQuery = None,
) -> Page[EventRead]:
    """The tenant's events, newest first."""
    events = await service.list_events(
        session, tenant_id=tenant.id, event_type=event_type, limit=limit, cursor=cursor
    )
    items = [EventRead.model_validate(e) for e in events]
    return Page(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get("/{event_id}", response_model=EventRead)
async def get_event(event_id: EventIdPath, tenant: TenantDep, session: SessionDep) -> EventRead:
    """An event by the event_id it was published with."""
    event = await service.get_event(session, tenant_id=tenant.id, event_id=event_id)
    return EventRead.model_validate(event)


@router.get("/{event_id}/deliveries", response_model=list[DeliveryDetail])
async def get_event_deliveries(
    event_id: EventIdPath, tenant: TenantDep, session: SessionDep, deliveries: DeliveriesDep
) -> list[DeliveryDetail]:
    """Each delivery of the event with every attempt made so far."""
    rows = await service.event_deliveries(
        session, deliveries=deliveries, tenant_id=tenant.id, event_id=event_id
    )
    return [
        DeliveryDetail.model_validate(
            {
                **{k: getattr(d, k) for k in DeliveryDetail.model_fields if k != "attempts"},
                "attempts": [AttemptRead.model_validate(a) for a in attempts],
            }
        )
        for d, attempts in rows
    ]
