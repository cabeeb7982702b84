"""Dead-letter queue routes: list, inspect, retry (one or by filter), resolve."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from webhookd.api.deps import DeliveriesDep, SessionDep, TenantDep, WriteSessionDep
from webhookd.api.errors import error_responses
from webhookd.api.route import OrjsonRoute
from webhookd.delivery.schemas import DeadLetterFilter, DeadLetterRead, RetryResult
from webhookd.models import DeadLetter
from webhookd.schemas import EventType, IdPath, IdQuery, Page

router = APIRouter(prefix="/api/v1/dlq", tags=["dead-letter queue"], route_class=OrjsonRoute)


def _read(entry: DeadLetter, event_id: str) -> DeadLetterRead:
    data = {k: getattr(entry, k) for k in DeadLetterRead.model_fields if k != "event_id"}
    return DeadLetterRead.model_validate({**data, "event_id": event_id})


@router.get("", response_model=Page[DeadLetterRead])
async def list_dead_letters(
    tenant: TenantDep,
    session: SessionDep,
    deliveries: DeliveriesDep,
    endpoint_id: IdQuery = None,
    event_type: Annotated[EventType | None, Query()] = None,
    resolved: Annotated[bool | None, Query(description="Default: unresolved only")] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: IdQuery = None,
) -> Page[DeadLetterRead]:
    """Dead-lettered deliveries, newest first."""
    rows = await deliveries.list_dead_letters(
        session,
        tenant_id=tenant.id,
        endpoint_id=endpoint_id,
        event_type=event_type,
        resolved=resolved,
        limit=limit,
        cursor=cursor,
    )
    items = [_read(entry, event_id) for entry, event_id in rows]
    return Page(items=items, next_cursor=items[-1].id if len(items) == limit else None)


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
        endpoint_id=selection.endpoint_id,
        event_type=selection.event_type,
    )
    return RetryResult(retried=len(delivery_ids), delivery_ids=delivery_ids)


@router.get("/{entry_id}", response_model=DeadLetterRead)
async def get_dead_letter(
    entry_id: IdPath, tenant: TenantDep, session: SessionDep, deliveries: DeliveriesDep
) -> DeadLetterRead:
    entry, event_id = await deliveries.get_dead_letter(
        session, tenant_id=tenant.id, entry_id=entry_id
    )
    return _read(entry, event_id)


@router.post("/{entry_id}/retry", response_model=RetryResult, responses=error_responses(409))
async def retry_dead_letter(
    entry_id: IdPath, tenant: TenantDep, session: WriteSessionDep, deliveries: DeliveriesDep
) -> RetryResult:
    """Deliver again with a fresh cycle of attempts; earlier attempts stay on record."""
    delivery_id = await deliveries.retry_dead_letter(
        session, tenant_id=tenant.id, entry_id=entry_id
    )
    return RetryResult(retried=1, delivery_ids=[delivery_id])


@router.delete("/{entry_id}", response_model=DeadLetterRead)
async def resolve_dead_letter(
    entry_id: IdPath, tenant: TenantDep, session: WriteSessionDep, deliveries: DeliveriesDep
) -> DeadLetterRead:
    """Mark the entry resolved without delivering it (``resolution: discarded``)."""
    entry, event_id = await deliveries.discard_dead_letter(
        session, tenant_id=tenant.id, entry_id=entry_id
    )
    return _read(entry, event_id)
