from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from webhookd.api.deps import PrincipalDep, SessionDep, SettingsDep, WriteSessionDep
from webhookd.api.errors import error_responses
from webhookd.api.route import OrjsonRoute
from webhookd.endpoint import service
from webhookd.endpoint.schemas import EndpointCreate, EndpointRead, EndpointUpdate
from webhookd.endpoint.service import Checked
from webhookd.schemas import IdPath, IdQuery, Page

router = APIRouter(
    prefix="/api/v1/tenants/{tenant_id}/endpoints", tags=["endpoints"], route_class=OrjsonRoute
)


# The URL is checked (its host resolved) by these dependencies, which the routes declare
# before their write session: no lock or pooled connection is held while DNS answers.
async def _checked_create(data: EndpointCreate, settings: SettingsDep) -> Checked[EndpointCreate]:
    return await service.check(data, settings)


async def _checked_update(data: EndpointUpdate, settings: SettingsDep) -> Checked[EndpointUpdate]:
    return await service.check(data, settings)


CheckedCreate = Annotated[Checked[EndpointCreate], Depends(_checked_create)]
CheckedUpdate = Annotated[Checked[EndpointUpdate], Depends(_checked_update)]


@router.post("", status_code=201, response_model=EndpointRead, responses=error_responses(409))
async def create_endpoint(
    tenant_id: IdPath,
    principal: PrincipalDep,
    checked: CheckedCreate,
    session: WriteSessionDep,
    settings: SettingsDep,
) -> EndpointRead:
    """Subscribe a URL to some (or all) of the tenant's event types."""
    principal.check_tenant(tenant_id)
    endpoint = await service.create_endpoint(
        session, tenant_id=tenant_id, checked=checked, settings=settings
    )
    return EndpointRead.model_validate(endpoint)


@router.get("", response_model=Page[EndpointRead])
async def list_endpoints(
    tenant_id: IdPath,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: IdQuery = None,
) -> Page[EndpointRead]:
    principal.check_tenant(tenant_id)
    endpoints = await service.list_endpoints(
        session, tenant_id=tenant_id, limit=limit, cursor=cursor
    )
    items = [EndpointRead.model_validate(e) for e in endpoints]
    return Page(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get("/{endpoint_id}", response_model=EndpointRead)
async def get_endpoint(
    tenant_id: IdPath, endpoint_id: IdPath, principal: PrincipalDep, session: SessionDep
) -> EndpointRead:
    principal.check_tenant(tenant_id)
    endpoint = await service.get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    return EndpointRead.model_validate(endpoint)


@router.patch("/{endpoint_id}", response_model=EndpointRead)
async def update_endpoint(
    tenant_id: IdPath,
    endpoint_id: IdPath,
    principal: PrincipalDep,
    checked: CheckedUpdate,
    session: WriteSessionDep,
) -> EndpointRead:
    """Change some fields; routing of events published from now on follows the change."""
    principal.check_tenant(tenant_id)
    endpoint = await service.update_endpoint(
        session, tenant_id=tenant_id, endpoint_id=endpoint_id, checked=checked
    )
    return EndpointRead.model_validate(endpoint)


@router.delete("/{endpoint_id}", status_code=204, response_class=Response)
async def delete_endpoint(
    tenant_id: IdPath, endpoint_id: IdPath, principal: PrincipalDep, session: WriteSessionDep
) -> Response:
    """Delete the endpoint, its pending deliveries and its history."""
    principal.check_tenant(tenant_id)
    await service.delete_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    return Response(status_code=204)
