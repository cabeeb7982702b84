from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from webhookd.api.deps import (
    AdminDep,
    AdminPathTenantDep,
    KeyCacheDep,
    PathTenantDep,
    RuntimeDep,
    SecretsDep,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
)
from webhookd.api.errors import error_responses
from webhookd.api.route import OrjsonRoute
from webhookd.endpoint.service import check_url
from webhookd.ids import Kind, format_id
from webhookd.schemas import CursorQuery, Page, decode_cursor, next_cursor
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


@router.post("", status_code=201, response_model=TenantCreated, responses=error_responses(409))
async def create_tenant(
    data: TenantCreate, _: AdminDep, session: WriteSessionDep, secrets: SecretsDep
) -> TenantCreated:
    """Create a tenant (admin key). The API key is in this response only; the signing secret
    can be read again with `GET /tenants/{id}/secret`. A `uid` already taken is a 409."""
    new = await service.create_tenant(session, data=data, secrets=secrets)
    return TenantCreated(
        **TenantRead.of(new.tenant).model_dump(),
        api_key=new.api_key,
        secret_key=new.secret_key,
    )


@router.get("", response_model=Page[TenantRead])
async def list_tenants(
    _: AdminDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorQuery = None,
) -> Page[TenantRead]:
    """List tenants (admin key), oldest first."""
    tenants = await service.list_tenants(session, limit=limit, after=decode_cursor(cursor))
    return Page(
        items=[TenantRead.of(t) for t in tenants],
        next_cursor=next_cursor([t.id for t in tenants], limit),
    )


@router.get("/{tenant_id}", response_model=TenantRead)
async def get_tenant(tenant: PathTenantDep, session: SessionDep) -> TenantRead:
    """A tenant, by its id or its uid (its own API key, or the admin key)."""
    return TenantRead.of(await service.get_tenant(session, tenant_id=tenant.id))


async def _checked_update(data: TenantUpdate, settings: SettingsDep) -> TenantUpdate:
    """The operational webhook URL is checked like an endpoint's (its host resolved for the
    SSRF guard) before the write session opens."""
    if data.operational_webhook_url is not None:
        await check_url(data.operational_webhook_url, settings, field="operational_webhook_url")
    return data


@router.patch("/{tenant_id}", response_model=TenantRead, responses=error_responses(409))
async def update_tenant(
    tenant: AdminPathTenantDep,
    data: Annotated[TenantUpdate, Depends(_checked_update)],
    session: WriteSessionDep,
    key_cache: KeyCacheDep,
    runtime: RuntimeDep,
) -> TenantRead:
    """Change a tenant's name, email, rate limit, uid, operational webhook URL or
    strict_event_types (admin key)."""
    key_cache.forget_on_commit(session, tenant.id)  # the cached rate limit and uid
    runtime.catalog.forget_on_commit(session, tenant.id)  # the cached strict_event_types
    updated = await service.update_tenant(session, tenant_id=tenant.id, data=data)
    return TenantRead.of(updated)


@router.post("/{tenant_id}/rotate-api-key", response_model=ApiKeyRotated)
async def rotate_api_key(
    tenant: PathTenantDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
    key_cache: KeyCacheDep,
) -> ApiKeyRotated:
    """Issue a new API key; the old one stops working immediately (on other API processes,
    within `WEBHOOKD_API_KEY_CACHE_SECONDS`)."""
    key_cache.forget_on_commit(session, tenant.id)
    rotated, api_key = await service.rotate_api_key(session, tenant_id=tenant.id, secrets=secrets)
    return ApiKeyRotated(
        id=format_id(Kind.TENANT, rotated.public_id),
        api_key=api_key,
        api_key_prefix=rotated.api_key_prefix,
    )


@router.get("/{tenant_id}/secret", response_model=SigningSecret)
async def reveal_secret(
    tenant: PathTenantDep, session: SessionDep, secrets: SecretsDep
) -> SigningSecret:
    """The current signing secret (stored encrypted; shown only to this call)."""
    row = await service.get_tenant(session, tenant_id=tenant.id)
    return SigningSecret(
        id=format_id(Kind.TENANT, row.public_id),
        secret_key=service.reveal_secret(row, secrets=secrets),
        previous_secret_expires_at=service.live_previous_expiry(row),
    )


@router.post("/{tenant_id}/rotate-secret", response_model=SigningSecret)
async def rotate_secret(
    tenant: PathTenantDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
    body: SecretRotate | None = None,
) -> SigningSecret:
    """A new signing secret. The current one keeps signing next to it for
    `grace_period_seconds` (default one day): every delivery then carries both signatures
    (`webhook-signature: v1,<new> v1,<old>`), so receivers can switch without a gap."""
    grace = dt.timedelta(seconds=(body or SecretRotate()).grace_period_seconds)
    row, secret_key = await service.rotate_secret(
        session, tenant_id=tenant.id, grace=grace, secrets=secrets
    )
    return SigningSecret(
        id=format_id(Kind.TENANT, row.public_id),
        secret_key=secret_key,
        previous_secret_expires_at=row.previous_secret_expires_at,
    )
