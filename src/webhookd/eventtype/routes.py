from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from webhookd.api.deps import PathTenantDep, RuntimeDep, SessionDep, WriteSessionDep
from webhookd.api.errors import error_responses
from webhookd.api.route import OrjsonRoute
from webhookd.eventtype import service
from webhookd.eventtype.schemas import EventTypeCreate, EventTypeRead, EventTypeUpdate
from webhookd.schemas import EVENT_TYPE_PATTERN, CursorQuery, Page, decode_cursor, next_cursor

router = APIRouter(
    prefix="/api/v1/tenants/{tenant_id}/event-types", tags=["event types"], route_class=OrjsonRoute
)

NamePath = Annotated[
    str,
    Path(min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN, description="The event type"),
]


@router.post("", status_code=201, response_model=EventTypeRead, responses=error_responses(409))
async def create_event_type(
    tenant: PathTenantDep, data: EventTypeCreate, session: WriteSessionDep, runtime: RuntimeDep
) -> EventTypeRead:
    """Add an event type to the tenant's catalog, optionally with the JSON Schema (draft
    2020-12) its payloads must meet (docs/EVENT_TYPES.md)."""
    row = await service.create_event_type(
        session, tenant_id=tenant.id, data=data, catalog=runtime.catalog
    )
    return EventTypeRead.of(row)


@router.get("", response_model=Page[EventTypeRead])
async def list_event_types(
    tenant: PathTenantDep,
    session: SessionDep,
    include_archived: Annotated[bool, Query()] = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorQuery = None,
) -> Page[EventTypeRead]:
    """The tenant's event types, oldest first (archived ones only with include_archived)."""
    rows = await service.list_event_types(
        session,
        tenant_id=tenant.id,
        include_archived=include_archived,
        limit=limit,
        after=decode_cursor(cursor),
    )
    return Page(
        items=[EventTypeRead.of(row) for row in rows],
        next_cursor=next_cursor([row.id for row in rows], limit),
    )


@router.get("/{name}", response_model=EventTypeRead)
async def get_event_type(
    tenant: PathTenantDep, name: NamePath, session: SessionDep
) -> EventTypeRead:
    return EventTypeRead.of(await service.get_event_type(session, tenant_id=tenant.id, name=name))


@router.patch("/{name}", response_model=EventTypeRead)
async def update_event_type(
    tenant: PathTenantDep,
    name: NamePath,
    data: EventTypeUpdate,
    session: WriteSessionDep,
    runtime: RuntimeDep,
) -> EventTypeRead:
    """Change the description, the schema (null removes it) or archived. Publishes through
    this process follow at once, through other API processes within
    WEBHOOKD_EVENT_TYPE_CACHE_SECONDS."""
    row = await service.update_event_type(
        session, tenant_id=tenant.id, name=name, data=data, catalog=runtime.catalog
    )
    return EventTypeRead.of(row)


@router.delete("/{name}", status_code=204, response_class=Response)
async def delete_event_type(
    tenant: PathTenantDep, name: NamePath, session: WriteSessionDep, runtime: RuntimeDep
) -> Response:
    """Remove the type from the catalog; events already published are kept."""
    await service.delete_event_type(
        session, tenant_id=tenant.id, name=name, catalog=runtime.catalog
    )
    return Response(status_code=204)
