from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from webhookd.deps import AdminDep, PrincipalDep, SessionDep, WriteSessionDep
from webhookd.routing import OrjsonRoute
from webhookd.schemas import IdPath, IdQuery, Page
from webhookd.tenant import service
from webhookd.tenant.schemas import (
    ApiKeyRotated,
    TenantCreate,
    TenantCreated,
    TenantRead,
    TenantUpdate,
)

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], route_class=OrjsonRoute)


@router.post("", status_code=201, response_model=TenantCreated)
async def create_tenant(data: TenantCreate, _: AdminDep, session: WriteSessionDep) -> TenantCreated:
    """Create a tenant (admin key). The API key and signing secret are in this response only."""
    tenant, api_key = await service.create_tenant(session, data=data)
    return TenantCreated(
        id=tenant.id,
        name=tenant.name,
        email=tenant.email,
        rate_limit=tenant.rate_limit,
        api_key=api_key,
        secret_key=tenant.secret_key,
        created_at=tenant.created_at,
    )


@router.get("", response_model=Page[TenantRead])
async def list_tenants(
    _: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: IdQuery = None,
) -> Page[TenantRead]:
    """List tenants (admin key)."""
    tenants = await service.list_tenants(session, limit=limit, cursor=cursor)
    items = [TenantRead.model_validate(t) for t in tenants]
    return Page(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get("/{tenant_id}", response_model=TenantRead)
async def get_tenant(tenant_id: IdPath, principal: PrincipalDep, session: SessionDep) -> TenantRead:
    """A tenant (its own API key, or the admin key)."""
    principal.check_tenant(tenant_id)
    return TenantRead.model_validate(await service.get_tenant(session, tenant_id=tenant_id))


@router.patch("/{tenant_id}", response_model=TenantRead)
async def update_tenant(
    tenant_id: IdPath, data: TenantUpdate, _: AdminDep, session: WriteSessionDep
) -> TenantRead:
    """Change a tenant's name, email or rate limit (admin key)."""
    tenant = await service.update_tenant(session, tenant_id=tenant_id, data=data)
    return TenantRead.model_validate(tenant)


@router.post("/{tenant_id}/rotate-api-key", response_model=ApiKeyRotated)
async def rotate_api_key(
    tenant_id: IdPath, principal: PrincipalDep, session: WriteSessionDep
) -> ApiKeyRotated:
    """Issue a new API key; the old one stops working immediately."""
    principal.check_tenant(tenant_id)
    tenant, api_key = await service.rotate_api_key(session, tenant_id=tenant_id)
    return ApiKeyRotated(id=tenant.id, api_key=api_key, api_key_prefix=tenant.api_key_prefix)
