from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from webhookd.api.deps import (
    AdminDep,
    KeyCacheDep,
    PrincipalDep,
    SecretsDep,
    SessionDep,
    WriteSessionDep,
)
from webhookd.api.route import OrjsonRoute
from webhookd.schemas import IdPath, IdQuery, Page
from webhookd.tenant import service
from webhookd.tenant.schemas import (
    ApiKeyRotated,
    SecretRotate,
    SigningSecret,
    TenantCreate,
    TenantCreated,
    TenantRead,
    TenantUpdate,
)

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"], route_class=OrjsonRoute)


@router.post("", status_code=201, response_model=TenantCreated)
async def create_tenant(
    data: TenantCreate, _: AdminDep, session: WriteSessionDep, secrets: SecretsDep
) -> TenantCreated:
    """Create a tenant (admin key). The API key is in this response only; the signing secret
    can be read again with `GET /tenants/{id}/secret`."""
    new = await service.create_tenant(session, data=data, secrets=secrets)
    return TenantCreated(
        id=new.tenant.id,
        name=new.tenant.name,
        email=new.tenant.email,
        rate_limit=new.tenant.rate_limit,
        api_key=new.api_key,
        secret_key=new.secret_key,
        created_at=new.tenant.created_at,
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
    tenant_id: IdPath,
    data: TenantUpdate,
    _: AdminDep,
    session: WriteSessionDep,
    key_cache: KeyCacheDep,
) -> TenantRead:
    """Change a tenant's name, email or rate limit (admin key)."""
    key_cache.forget_on_commit(session, tenant_id)  # the cached rate limit
    tenant = await service.update_tenant(session, tenant_id=tenant_id, data=data)
    return TenantRead.model_validate(tenant)


@router.post("/{tenant_id}/rotate-api-key", response_model=ApiKeyRotated)
async def rotate_api_key(
    tenant_id: IdPath,
    principal: PrincipalDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
    key_cache: KeyCacheDep,
) -> ApiKeyRotated:
    """Issue a new API key; the old one stops working immediately (on other API processes,
    within `WEBHOOKD_API_KEY_CACHE_SECONDS`)."""
    principal.check_tenant(tenant_id)
    key_cache.forget_on_commit(session, tenant_id)
    tenant, api_key = await service.rotate_api_key(session, tenant_id=tenant_id, secrets=secrets)
    return ApiKeyRotated(id=tenant.id, api_key=api_key, api_key_prefix=tenant.api_key_prefix)


@router.get("/{tenant_id}/secret", response_model=SigningSecret)
async def reveal_secret(
    tenant_id: IdPath, principal: PrincipalDep, session: SessionDep, secrets: SecretsDep
) -> SigningSecret:
    """The current signing secret (stored encrypted; shown only to this call)."""
    principal.check_tenant(tenant_id)
    tenant = await service.get_tenant(session, tenant_id=tenant_id)
    return SigningSecret(
        id=tenant.id,
        secret_key=service.reveal_secret(tenant, secrets=secrets),
        previous_secret_expires_at=service.live_previous_expiry(tenant),
    )


@router.post("/{tenant_id}/rotate-secret", response_model=SigningSecret)
async def rotate_secret(
    tenant_id: IdPath,
    principal: PrincipalDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
    body: SecretRotate | None = None,
) -> SigningSecret:
    """A new signing secret. The current one keeps signing next to it for
    `grace_period_seconds` (default one day): every delivery then carries both signatures
    (`webhook-signature: v1,<new> v1,<old>`), so receivers can switch without a gap."""
    principal.check_tenant(tenant_id)
    grace = dt.timedelta(seconds=(body or SecretRotate()).grace_period_seconds)
    tenant, secret_key = await service.rotate_secret(
        session, tenant_id=tenant_id, grace=grace, secrets=secrets
    )
    return SigningSecret(
        id=tenant.id,
        secret_key=secret_key,
        previous_secret_expires_at=tenant.previous_secret_expires_at,
    )
