"""``/api/v1/event-type``, ``/api/v1/auth/app-portal-access/{app_id}`` and ``/api/v1/health``.

Svix's event types belong to the environment, not to an application: with the admin key
they are the deployment's catalog (no tenant; publishes are not checked against it); with a
tenant's key, that tenant's catalog (whose schemas its publishes must meet, as natively).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from webhookd.api.deps import Principal, RuntimeDep, SessionDep, WriteSessionDep
from webhookd.errors import NotFound, field_error
from webhookd.eventtype import service as event_types
from webhookd.eventtype.catalog import EventTypeCatalog
from webhookd.eventtype.schemas import EventTypeCreate, EventTypeUpdate
from webhookd.models import EventTypeDef
from webhookd.portal import service as portal
from webhookd.schemas import EVENT_TYPE_PATTERN
from webhookd.svix.auth import AppDep, IdempotencyDep, SvixPrincipalDep
from webhookd.svix.convert import Position, event_type_out, paged, position
from webhookd.svix.errors import SvixRoute
from webhookd.svix.schemas import (
    AppPortalAccessIn,
    AppPortalAccessOut,
    EventTypeIn,
    EventTypeOut,
    EventTypePatch,
    EventTypeUpsertIn,
    ListResponse,
    Ordering,
)

router = APIRouter(prefix="/api/v1", tags=["svix"], route_class=SvixRoute)

EventTypeName = Annotated[
    str, Path(min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN, description="The type")
]
Limit = Annotated[int, Query(ge=1, le=250)]
Iterator = Annotated[str | None, Query(max_length=64)]
PORTAL_TTL = 3600  # seconds, when the request gives no expiry


def _owner(principal: Principal) -> int | None:
    """Whose catalog: the key's tenant's, or (admin key) the deployment's."""
    return None if principal.tenant is None else principal.tenant.id


def _schema(schemas: dict[str, Any] | None) -> dict[str, Any] | None:
    """Svix keeps a schema per version ({"1": {...}}); webhookd one per type: the latest."""
    if not schemas:
        return None
    latest = max(schemas, key=lambda v: (len(v), v))
    schema = schemas[latest]
    if not isinstance(schema, dict):
        raise field_error("schemas", f"schemas[{latest!r}] is not a JSON Schema object")
    return schema


@router.post("/event-type", status_code=201, response_model=EventTypeOut)
async def create_event_type(
    data: EventTypeIn,
    principal: SvixPrincipalDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    idem: IdempotencyDep,
) -> Response:
    if (replay := await idem.replay(session)) is not None:
        return replay
    row = await _create(session, _owner(principal), data, runtime.catalog)
    return await idem.remember(session, 201, event_type_out(row))


async def _create(
    session: WriteSessionDep, owner: int | None, data: EventTypeIn, catalog: EventTypeCatalog
) -> EventTypeDef:
    create = EventTypeCreate.model_validate(
        {
            "name": data.name,
            "description": data.description,
            "schema": _schema(data.schemas),
            "archived": bool(data.archived),
        }
    )
    return await event_types.create_event_type(
        session, tenant_id=owner, data=create, catalog=catalog
    )


@router.get("/event-type", response_model=ListResponse[EventTypeOut])
async def list_event_types(
    principal: SvixPrincipalDep,
    session: SessionDep,
    limit: Limit = 50,
    iterator: Iterator = None,
    order: Ordering = Ordering.ASCENDING,
    include_archived: Annotated[bool, Query()] = False,
) -> ListResponse[EventTypeOut]:
    async def fetch(n: int, at: Position) -> list[EventTypeDef]:
        return await event_types.list_event_types(
            session,
            tenant_id=_owner(principal),
            include_archived=include_archived,
            limit=n,
            after=at.after,
            newest_first=at.newest_first,
        )

    return await paged(
        fetch, lambda r: r.id, event_type_out, limit=limit, at=position(iterator, order)
    )


@router.get("/event-type/{event_type_name}", response_model=EventTypeOut)
async def get_event_type(
    event_type_name: EventTypeName, principal: SvixPrincipalDep, session: SessionDep
) -> EventTypeOut:
    row = await event_types.get_event_type(
        session, tenant_id=_owner(principal), name=event_type_name
    )
    return event_type_out(row)


async def _update(
    session: WriteSessionDep,
    owner: int | None,
    name: str,
    values: dict[str, Any],
    catalog: EventTypeCatalog,
) -> EventTypeDef:
    update = EventTypeUpdate.model_validate(values)
    return await event_types.update_event_type(
        session, tenant_id=owner, name=name, data=update, catalog=catalog
    )


@router.put(
    "/event-type/{event_type_name}",
    response_model=EventTypeOut,
    responses={201: {"model": EventTypeOut, "description": "Created"}},
)
async def upsert_event_type(
    event_type_name: EventTypeName,
    data: EventTypeUpsertIn,
    principal: SvixPrincipalDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> EventTypeOut:
    """Replace the event type's description, schema and archived; or create it."""
    name, owner = event_type_name, _owner(principal)
    try:
        await event_types.get_event_type(session, tenant_id=owner, name=name)
    except NotFound:
        response.status_code = 201
        created = EventTypeIn(name=name, **data.model_dump())
        return event_type_out(await _create(session, owner, created, runtime.catalog))
    values = {
        "description": data.description,
        "schema": _schema(data.schemas),
        "archived": bool(data.archived),
    }
    return event_type_out(await _update(session, owner, name, values, runtime.catalog))


@router.patch("/event-type/{event_type_name}", response_model=EventTypeOut)
async def patch_event_type(
    event_type_name: EventTypeName,
    data: EventTypePatch,
    principal: SvixPrincipalDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
) -> EventTypeOut:
    values: dict[str, Any] = data.model_dump(
        exclude_unset=True, include={"description", "archived"}
    )
    if "schemas" in data.model_fields_set:
        values["schema"] = _schema(data.schemas)
    name = event_type_name
    return event_type_out(await _update(session, _owner(principal), name, values, runtime.catalog))


@router.delete("/event-type/{event_type_name}", status_code=204, response_class=Response)
async def delete_event_type(
    event_type_name: EventTypeName,
    principal: SvixPrincipalDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    expunge: Annotated[bool, Query()] = False,
) -> Response:
    """Archive the event type, as Svix does; `expunge=true` deletes it."""
    name, owner = event_type_name, _owner(principal)
    if expunge:
        await event_types.delete_event_type(
            session, tenant_id=owner, name=name, catalog=runtime.catalog
        )
    else:
        await _update(session, owner, name, {"archived": True}, runtime.catalog)
    return Response(status_code=204)


@router.post("/auth/app-portal-access/{app_id}", response_model=AppPortalAccessOut)
async def app_portal_access(
    request: Request,
    app: AppDep,
    session: WriteSessionDep,
    idem: IdempotencyDep,
    data: AppPortalAccessIn | None = None,
) -> Response:
    """A one-time link into the tenant portal (the native `POST /api/v1/portal-sessions`):
    `url` opens it, `token` is the link's token. `expiry`: seconds, 24 h at most."""
    if (replay := await idem.replay(session)) is not None:
        return replay
    ttl = (data.expiry if data and data.expiry else None) or PORTAL_TTL
    token, _ = await portal.create_link(session, tenant_id=app.id, endpoint_ids=None, ttl=ttl)
    url = portal.link_url(str(request.base_url), token)
    return await idem.remember(session, 200, AppPortalAccessOut(url=url, token=token))


@router.get("/health", status_code=204, response_class=Response)
async def health() -> Response:
    """204 while the server answers (no key needed), as Svix's; readiness: `/ready`."""
    return Response(status_code=204)
