"""Tenants: creation, lookup, updates, API key rotation, signing secret reveal and rotation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import utcnow
from webhookd.delivery.signing import generate_secret
from webhookd.errors import Conflict, NotFound
from webhookd.models import Tenant
from webhookd.schemas import changes
from webhookd.security import ServerSecrets, display_prefix, generate_api_key, hash_api_key
from webhookd.tenant import repository
from webhookd.tenant.schemas import TenantCreate, TenantUpdate


@dataclass(frozen=True, slots=True)
class NewTenant:
    tenant: Tenant
    api_key: str  # in clear only here: the database keeps its keyed hash
    secret_key: str  # in clear only here: the database keeps it encrypted


async def create_tenant(
    session: AsyncSession, *, data: TenantCreate, secrets: ServerSecrets
) -> NewTenant:
    if data.uid is not None and await repository.uid_taken(session, uid=data.uid):
        raise Conflict(f"uid {data.uid!r} is already another tenant's", code="uid_taken")
    api_key = generate_api_key()
    secret_key = generate_secret()
    tenant = Tenant(
        name=data.name,
        email=data.email,
        rate_limit=data.rate_limit,
        uid=data.uid,
        strict_event_types=data.strict_event_types,
        retention_days=data.retention_days,
        api_key_hash=hash_api_key(api_key, secrets.pepper),
        api_key_prefix=display_prefix(api_key),
        secret_encrypted=secrets.box.encrypt(secret_key),
    )
    session.add(tenant)
    await _flush_uid(session, data.uid)
    return NewTenant(tenant, api_key, secret_key)


async def _flush_uid(session: AsyncSession, uid: str | None) -> None:
    """Flush, answering a uid another request took meanwhile with a 409, not a 500."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if uid is None:
            raise
        raise Conflict(f"uid {uid!r} is already another tenant's", code="uid_taken") from exc


async def get_tenant(session: AsyncSession, *, tenant_id: int) -> Tenant:
    tenant = await repository.get(session, tenant_id=tenant_id)
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


async def get_tenant_by_ref(session: AsyncSession, *, ref: str) -> Tenant:
    """The tenant a path or a request names, by its id (``tnt_…``) or its uid."""
    tenant = await repository.get_by_ref(session, ref=ref)
    if tenant is None:
        raise NotFound(f"tenant {ref!r} not found")
    return tenant


async def ensure_tenant(session: AsyncSession, *, tenant_id: int) -> None:
    """404 for a tenant that no longer exists."""
    if not await repository.exists(session, tenant_id=tenant_id):
        raise NotFound("tenant not found")


async def list_tenants(session: AsyncSession, *, limit: int, after: int | None) -> list[Tenant]:
    return await repository.page(session, limit=limit, after=after)


async def update_tenant(session: AsyncSession, *, tenant_id: int, data: TenantUpdate) -> Tenant:
    tenant = await get_tenant(session, tenant_id=tenant_id)
    values = changes(data, not_null=("name", "email", "rate_limit", "strict_event_types"))
    uid = values.get("uid")
    if uid is not None and await repository.uid_taken(session, uid=uid, other_than=tenant.id):
        raise Conflict(f"uid {uid!r} is already another tenant's", code="uid_taken")
    for field, value in values.items():
        setattr(tenant, field, value)
    await _flush_uid(session, uid)
    return tenant


async def rotate_api_key(
    session: AsyncSession, *, tenant_id: int, secrets: ServerSecrets
) -> tuple[Tenant, str]:
    tenant = await get_tenant(session, tenant_id=tenant_id)
    api_key = generate_api_key()
    tenant.api_key_hash = hash_api_key(api_key, secrets.pepper)
    tenant.api_key_prefix = display_prefix(api_key)
    await session.flush()
    return tenant, api_key


def live_previous_expiry(tenant: Tenant) -> dt.datetime | None:
    """When the previous secret stops signing, if it still does."""
    expires = tenant.previous_secret_expires_at
    return expires if expires is not None and expires > utcnow() else None


def reveal_secret(tenant: Tenant, *, secrets: ServerSecrets) -> str:
    return secrets.box.decrypt(tenant.secret_encrypted)


async def rotate_secret(
    session: AsyncSession,
    *,
    tenant_id: int,
    grace: dt.timedelta,
    secrets: ServerSecrets,
) -> tuple[Tenant, str]:
    """A new signing secret from now on; the current one keeps signing too (every delivery
    carries both signatures) until ``now + grace``, so receivers can switch without a gap.
    A rotation during a grace period drops the oldest secret."""
    tenant = await get_tenant(session, tenant_id=tenant_id)
    secret_key = generate_secret()
    if grace.total_seconds() > 0:
        tenant.previous_secret_encrypted = tenant.secret_encrypted
        tenant.previous_secret_expires_at = utcnow() + grace
    else:
        tenant.previous_secret_encrypted = None
        tenant.previous_secret_expires_at = None
    tenant.secret_encrypted = secrets.box.encrypt(secret_key)
    await session.flush()
    return tenant, secret_key
