from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from webhookd.api.deps import DeliveriesDep, PrincipalDep, RuntimeDep, SessionDep, TenantDep
from webhookd.api.errors import error_responses
from webhookd.api.route import OrjsonRoute
from webhookd.delivery.schemas import DeliveryDetail
from webhookd.event import service
from webhookd.event.ingest import accept, publishing_tenant
from webhookd.event.schemas import EventAccepted, EventCreate, EventIdPath, EventRead
from webhookd.schemas import CursorQuery, EventType, Page, decode_cursor, next_cursor

router = APIRouter(prefix="/api/v1/events", tags=["events"], route_class=OrjsonRoute)


@router.post(
    "",
    status_code=202,
    response_model=EventAccepted,
    responses={
        200: {"model": EventAccepted, "description": "Duplicate event_id: the original event"},
        **error_responses(404, 409),
    },
)
async def publish_event(
    data: EventCreate, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    """Publish an event to every subscribed endpoint of a tenant: the key's own (`X-API-Key`),
    or, with the admin key (`X-Admin-Key`), the tenant named by `tenant_id` or `uid`.

    The event and its deliveries are committed before this answers 202. Publishing the same
    event_id again answers 200 with the original event and ``duplicate: true``; the same
    event_id with another type or payload is a 409 `idempotency_conflict`.
    """
    # The answer is serialised once by pydantic-core (``response_model`` stays for the OpenAPI
    # schema). Well-formed publishes whose key and tenant this process knows are served by
    # event/ingest.py's fast path.
    tenant = await publishing_tenant(runtime, principal.tenant, data)
    status, content, headers = await accept(runtime, tenant, data)
    return Response(content, status_code=status, headers=headers, media_type="application/json")


@router.get("", response_model=Page[EventRead])
async def list_events(
    tenant: TenantDep,
    session: SessionDep,
    event_type: Annotated[EventType | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorQuery = None,
) -> Page[EventRead]:
    """The tenant's events, newest first."""
    events = await service.list_events(
        session,
        tenant_id=tenant.id,
        event_type=event_type,
        limit=limit,
        before=decode_cursor(cursor),
    )
    return Page(
        items=[EventRead.of(e) for e in events],
        next_cursor=next_cursor([e.id for e in events], limit),
    )


@router.get("/{event_id}", response_model=EventRead)
async def get_event(event_id: EventIdPath, tenant: TenantDep, session: SessionDep) -> EventRead:
    """An event by the event_id it was published with (or by its id, `evt_…`)."""
    event = await service.get_event(session, tenant_id=tenant.id, event_id=event_id)
    return EventRead.of(event)


@router.get("/{event_id}/deliveries", response_model=list[DeliveryDetail])
async def get_event_deliveries(
    event_id: EventIdPath, tenant: TenantDep, session: SessionDep, deliveries: DeliveriesDep
) -> list[DeliveryDetail]:
    """Each delivery of the event with every attempt made so far."""
    rows = await service.event_deliveries(
        session, deliveries=deliveries, tenant_id=tenant.id, event_id=event_id
    )
    return [DeliveryDetail.with_attempts(row, attempts) for row, attempts in rows]
