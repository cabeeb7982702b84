"""Tenants: creation, lookup, updates and API key rotation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.delivery.signing import generate_secret
from webhookd.errors import NotFound
from webhookd.models import Tenant
from webhookd.schemas import changes
from webhookd.security import display_prefix, generate_api_key, hash_api_key
from webhookd.tenant.schemas import TenantCreate, TenantUpdate


async def create_tenant(session: AsyncSession, *, data: TenantCreate) -> tuple[Tenant, str]:
    """Create a tenant; returns it with its API key in clear (the only time it exists)."""
    api_key = generate_api_key()
    tenant = Tenant(
        name=data.name,
        email=data.email,
        rate_limit=data.rate_limit,
        api_key_hash=hash_api_key(api_key),
        api_key_prefix=display_prefix(api_key),
        secret_key=generate_secret(),
    )
    session.add(tenant)
    await session.flush()
    return tenant, api_key


async def get_tenant(session: AsyncSession, *, tenant_id: int) -> Tenant:
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id} not found")
    return tenant


async def list_tenants(session: AsyncSession, *, limit: int, cursor: int | None) -> list[Tenant]:
    query = select(Tenant).order_by(Tenant.id).limit(limit)
    if cursor is not None:
        query = query.where(Tenant.id > cursor)
    return list((await session.execute(query)).scalars())


async def update_tenant(session: AsyncSession, *, tenant_id: int, data: TenantUpdate) -> Tenant:
    tenant = await get_tenant(session, tenant_id=tenant_id)
    for field, value in changes(data, not_null=("name", "email", "rate_limit")).items():
        setattr(tenant, field, value)
    await session.flush()
    return tenant


async def rotate_api_key(session: AsyncSession, *, tenant_id: int) -> tuple[Tenant, str]:
    tenant = await get_tenant(session, tenant_id=tenant_id)
    api_key = generate_api_key()
    tenant.api_key_hash = hash_api_key(api_key)
    tenant.api_key_prefix = display_prefix(api_key)
    await session.flush()
    return tenant, api_key
