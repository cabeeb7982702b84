"""Delivery routes: listings ("what is failing right now") and the dead-letter queue."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.api.deps import (
    DeliveriesDep,
    PathTenantDep,
    SecretsDep,
    SessionDep,
    TenantDep,
    WriteSessionDep,
)
from webhookd.api.errors import error_responses
from webhookd.api.route import OrjsonRoute
from webhookd.db import utcnow
from webhookd.delivery.schemas import (
    DeadLetterFilter,
    DeadLetterRead,
    DeliveryDetail,
    DeliveryRead,
    RetryResult,
    TestSendCreate,
)
from webhookd.delivery.service import DeliveryService
from webhookd.endpoint.schemas import EndpointRead
from webhookd.endpoint.service import endpoint_headers, endpoint_row_id, get_endpoint
from webhookd.errors import Conflict, NotFound
from webhookd.ids import Kind, format_id
from webhookd.models import DeliveryStatus
from webhookd.schemas import (
    CursorQuery,
    EventType,
    Page,
    PublicIdPath,
    decode_cursor,
    next_cursor,
)

router = APIRouter(prefix="/api/v1/dlq", tags=["dead-letter queue"], route_class=OrjsonRoute)
deliveries_router = APIRouter(tags=["deliveries"], route_class=OrjsonRoute)

Limit = Annotated[int, Query(ge=1, le=100)]
Statuses = Annotated[
    list[DeliveryStatus] | None,
    Query(description="Only deliveries in these states (repeat the parameter for several)"),
]
Since = Annotated[dt.datetime | None, Query(description="Only deliveries created since then")]
EndpointQuery = Annotated[
    str | None, Query(min_length=1, max_length=255, description="Only this endpoint's (`ep_…`)")
]


NO_ENDPOINT = -1  # no row has it: a filter on an unknown endpoint matches nothing


async def _endpoint(session: AsyncSession, tenant_id: int, endpoint_id: str | None) -> int | None:
    """The row id of a filter's endpoint (None: no filter). An endpoint the tenant does not
    have filters everything out, as another tenant's does: no error tells them apart."""
    if endpoint_id is None:
        return None
    try:
        return await endpoint_row_id(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    except NotFound:
        return NO_ENDPOINT


async def _page(
    session: AsyncSession,
    deliveries: DeliveryService,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    status: list[DeliveryStatus] | None,
    since: dt.datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[DeliveryRead]:
    rows = await deliveries.list_deliveries(
        session,
        tenant_id=tenant_id,
        endpoint_id=endpoint_id,
        statuses=status or [],
        since=since,
        limit=limit,
        before=decode_cursor(cursor),
    )
    return Page(
        items=[DeliveryRead.of(row) for row in rows],
        next_cursor=next_cursor([row[0].id for row in rows], limit),
    )


@deliveries_router.get("/api/v1/deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    tenant: TenantDep,
    session: SessionDep,
    deliveries: DeliveriesDep,
    status: Statuses = None,
    since: Since = None,
    endpoint_id: EndpointQuery = None,
    limit: Limit = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryRead]:
    """The tenant's deliveries, newest first: e.g. `?status=retrying&status=dead` for what
    is failing right now."""
    return await _page(
        session,
        deliveries,
        tenant_id=tenant.id,
        endpoint_id=await _endpoint(session, tenant.id, endpoint_id),
        status=status,
        since=since,
        limit=limit,
        cursor=cursor,
    )


@deliveries_router.post(
    "/api/v1/tenants/{tenant_id}/endpoints/{endpoint_id}/enable",
    response_model=EndpointRead,
    tags=["endpoints"],
)
async def enable_endpoint(
    tenant: PathTenantDep,
    endpoint_id: PublicIdPath,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
    secrets: SecretsDep,
) -> EndpointRead:
    """Enable the endpoint: clears `disabled_reason` (410 Gone or failing), resets its
    circuit breaker, sets `is_active`, and sends the deliveries that waited for it (in
    publish order for a FIFO endpoint). Enabling an enabled endpoint changes nothing."""
    endpoint = await get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
    await deliveries.enable_endpoint(session, endpoint.id)
    await session.refresh(endpoint)
    return EndpointRead.of(endpoint, tenant.ref, endpoint_headers(endpoint, secrets))


@deliveries_router.post(
    "/api/v1/tenants/{tenant_id}/endpoints/{endpoint_id}/test",
    status_code=202,
    response_model=DeliveryRead,
    responses=error_responses(409),
    tags=["endpoints"],
)
async def send_test(
    tenant: PathTenantDep,
    endpoint_id: PublicIdPath,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
    data: TestSendCreate | None = None,
) -> DeliveryRead:
    """Send a `webhookd.test` event to this endpoint alone (whatever event types it
    subscribed to), signed like any other; the answer is its delivery, pending. Follow it
    with `GET /api/v1/deliveries/{id}`. A disabled endpoint is a 409: enable it first."""
    endpoint = await get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
    if not endpoint.is_active or endpoint.disabled_reason is not None:
        reason = endpoint.disabled_reason or "paused"
        raise Conflict(
            f"endpoint {endpoint_id} is disabled ({reason}): enable it first "
            f"(POST /api/v1/tenants/{{tenant_id}}/endpoints/{endpoint_id}/enable)",
            code="endpoint_disabled",
        )
    ref = format_id(Kind.ENDPOINT, endpoint.public_id)
    payload = (data.payload if data else None) or {
        "message": "A test event from webhookd",
        "endpoint_id": ref,
    }
    delivery_id = await deliveries.send_test(
        session, tenant_id=tenant.id, endpoint_id=endpoint.id, payload=payload, now=utcnow()
    )
    row, _ = await deliveries.get_delivery(
        session, tenant_id=tenant.id, delivery_id=format_id(Kind.DELIVERY, delivery_id)
    )
    return DeliveryRead.of(row)


@deliveries_router.get("/api/v1/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(
    delivery_id: PublicIdPath, tenant: TenantDep, session: SessionDep, deliveries: DeliveriesDep
) -> DeliveryDetail:
    """One delivery (`dlv_…`) with every attempt made so far."""
    row, attempts = await deliveries.get_delivery(
        session, tenant_id=tenant.id, delivery_id=delivery_id
    )
    return DeliveryDetail.with_attempts(row, attempts)


async def _path_endpoint(session: AsyncSession, tenant_id: int, endpoint_id: str) -> int:
    return await endpoint_row_id(session, tenant_id=tenant_id, endpoint_id=endpoint_id)


@deliveries_router.get(
    "/api/v1/tenants/{tenant_id}/endpoints/{endpoint_id}/deliveries",
    response_model=Page[DeliveryRead],
)
async def list_endpoint_deliveries(
    tenant: PathTenantDep,
    endpoint_id: PublicIdPath,
    session: SessionDep,
    deliveries: DeliveriesDep,
    status: Statuses = None,
    since: Since = None,
    limit: Limit = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryRead]:
    """One endpoint's deliveries, newest first (its tenant's key, or the admin key)."""
    return await _page(
        session,
        deliveries,
        tenant_id=tenant.id,
        endpoint_id=await _path_endpoint(session, tenant.id, endpoint_id),
        status=status,
        since=since,
        limit=limit,
        cursor=cursor,
    )


@router.get("", response_model=Page[DeadLetterRead])
async def list_dead_letters(
    tenant: TenantDep,
    session: SessionDep,
    deliveries: DeliveriesDep,
    endpoint_id: EndpointQuery = None,
    event_type: Annotated[EventType | None, Query()] = None,
    resolved: Annotated[bool | None, Query(description="Default: unresolved only")] = False,
    limit: Limit = 50,
    cursor: CursorQuery = None,
) -> Page[DeadLetterRead]:
    """Dead-lettered deliveries, newest first."""
    rows = await deliveries.list_dead_letters(
        session,
        tenant_id=tenant.id,
        endpoint_id=await _endpoint(session, tenant.id, endpoint_id),
        event_type=event_type,
        resolved=resolved,
        limit=limit,
        before=decode_cursor(cursor),
    )
    return Page(
        items=[DeadLetterRead.of(row) for row in rows],
        next_cursor=next_cursor([row[0].id for row in rows], limit),
    )


@router.post("/retry", response_model=RetryResult)
async def retry_dead_letters(
    tenant: TenantDep,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
    selection: DeadLetterFilter | None = None,
) -> RetryResult:
    """Retry every unresolved entry that matches the filter (all of them without one),
    up to 1,000 per call. Each gets a fresh cycle of attempts."""
    selection = selection or DeadLetterFilter()
    delivery_ids = await deliveries.retry_dead_letters(
        session,
        tenant_id=tenant.id,
        endpoint_id=await _endpoint(session, tenant.id, selection.endpoint_id),
        event_type=selection.event_type,
    )
    return RetryResult(
        retried=len(delivery_ids),
        delivery_ids=[format_id(Kind.DELIVERY, d) for d in delivery_ids],
    )


@router.get("/{entry_id}", response_model=DeadLetterRead)
async def get_dead_letter(
    entry_id: PublicIdPath, tenant: TenantDep, session: SessionDep, deliveries: DeliveriesDep
) -> DeadLetterRead:
    row = await deliveries.get_dead_letter(session, tenant_id=tenant.id, entry_id=entry_id)
    return DeadLetterRead.of(row)


@router.post("/{entry_id}/retry", response_model=RetryResult, responses=error_responses(409))
async def retry_dead_letter(
    entry_id: PublicIdPath, tenant: TenantDep, session: WriteSessionDep, deliveries: DeliveriesDep
) -> RetryResult:
    """Deliver again with a fresh cycle of attempts; earlier attempts stay on record."""
    delivery_id = await deliveries.retry_dead_letter(
        session, tenant_id=tenant.id, entry_id=entry_id
    )
    return RetryResult(retried=1, delivery_ids=[format_id(Kind.DELIVERY, delivery_id)])


@router.delete("/{entry_id}", response_model=DeadLetterRead)
async def resolve_dead_letter(
    entry_id: PublicIdPath, tenant: TenantDep, session: WriteSessionDep, deliveries: DeliveriesDep
) -> DeadLetterRead:
    """Mark the entry resolved without delivering it (``resolution: discarded``)."""
    row = await deliveries.discard_dead_letter(session, tenant_id=tenant.id, entry_id=entry_id)
    return DeadLetterRead.of(row)
