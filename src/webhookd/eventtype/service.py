"""The event-type catalog of a tenant: every query starts from the tenant (None: the
deployment's catalog, the Svix API's event types for the operator; publishes are not
checked against it)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.errors import Conflict, NotFound, field_error
from webhookd.eventtype import repository
from webhookd.eventtype.catalog import EventTypeCatalog
from webhookd.eventtype.schemas import EventTypeCreate, EventTypeUpdate
from webhookd.eventtype.validation import SchemaError, compile_schema
from webhookd.models import EventTypeDef
from webhookd.schemas import changes
from webhookd.tenant.service import ensure_tenant

MAX_EVENT_TYPES = 1000  # per tenant


def _check_schema(schema: dict[str, object] | None) -> None:
    if schema is not None:
        try:
            compile_schema(schema)
        except SchemaError as exc:
            raise field_error("schema", f"not a valid JSON Schema (draft 2020-12): {exc}") from exc


def _forget(catalog: EventTypeCatalog, session: AsyncSession, tenant_id: int | None) -> None:
    if tenant_id is not None:  # the deployment's catalog checks no publish
        catalog.forget_on_commit(session, tenant_id)


async def create_event_type(
    session: AsyncSession,
    *,
    tenant_id: int | None,
    data: EventTypeCreate,
    catalog: EventTypeCatalog,
) -> EventTypeDef:
    _check_schema(data.schema_)
    if tenant_id is not None:
        await ensure_tenant(session, tenant_id=tenant_id)
    if await repository.get(session, tenant_id=tenant_id, name=data.name) is not None:
        raise Conflict(f"event type {data.name!r} already exists", code="event_type_exists")
    if await repository.count(session, tenant_id=tenant_id) >= MAX_EVENT_TYPES:
        raise Conflict(f"the tenant already has {MAX_EVENT_TYPES} event types (the limit)")
    row = EventTypeDef(
        tenant_id=tenant_id,
        name=data.name,
        description=data.description,
        schema=data.schema_,
        archived=data.archived,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:  # created concurrently
        raise Conflict(
            f"event type {data.name!r} already exists", code="event_type_exists"
        ) from exc
    _forget(catalog, session, tenant_id)
    return row


async def get_event_type(
    session: AsyncSession, *, tenant_id: int | None, name: str
) -> EventTypeDef:
    found = await repository.get(session, tenant_id=tenant_id, name=name)
    if found is None:
        raise NotFound(f"event type {name!r} not found")
    return found


async def list_event_types(
    session: AsyncSession,
    *,
    tenant_id: int | None,
    include_archived: bool,
    limit: int,
    after: int | None,
    newest_first: bool = False,
) -> list[EventTypeDef]:
    return await repository.page(
        session,
        tenant_id=tenant_id,
        include_archived=include_archived,
        limit=limit,
        after=after,
        newest_first=newest_first,
    )


async def update_event_type(
    session: AsyncSession,
    *,
    tenant_id: int | None,
    name: str,
    data: EventTypeUpdate,
    catalog: EventTypeCatalog,
) -> EventTypeDef:
    row = await get_event_type(session, tenant_id=tenant_id, name=name)
    values = changes(data, not_null=("archived",))
    if "schema_" in values:
        _check_schema(values["schema_"])
        row.schema = values.pop("schema_")
    for field, value in values.items():
        setattr(row, field, value)
    await session.flush()
    _forget(catalog, session, tenant_id)
    return row


async def delete_event_type(
    session: AsyncSession, *, tenant_id: int | None, name: str, catalog: EventTypeCatalog
) -> None:
    """Remove the type from the catalog (events already published keep their type)."""
    row = await get_event_type(session, tenant_id=tenant_id, name=name)
    await session.delete(row)
    await session.flush()
    _forget(catalog, session, tenant_id)
