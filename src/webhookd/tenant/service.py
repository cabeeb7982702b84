"""Tenants: creation, lookup, updates, API key rotation, signing secret reveal and rotation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import utcnow
from webhookd.delivery.signing import generate_secret
from webhookd.errors import Conflict, NotFound
from webhookd.models import Endpoint, Tenant
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
        raise _uid_taken(data.uid)
    api_key = generate_api_key()
    secret_key = generate_secret()
    tenant = Tenant(
        name=data.name,
        email=data.email,
        rate_limit=data.rate_limit,
        uid=data.uid,
        strict_event_types=data.strict_event_types,
        retention_days=data.retention_days,
        delivery_format=data.delivery_format,
        labels=data.metadata,
        api_key_hash=hash_api_key(api_key, secrets.pepper),
        api_key_prefix=display_prefix(api_key),
        secret_encrypted=secrets.box.encrypt(secret_key),
    )
    session.add(tenant)
    await flush_uid(session, data.uid, _uid_taken)
    return NewTenant(tenant, api_key, secret_key)


def _uid_taken(uid: str) -> Conflict:
    return Conflict(f"uid {uid!r} is already another tenant's", code="uid_taken")


async def flush_uid(
    session: AsyncSession, uid: str | None, taken: Callable[[str], Conflict]
) -> None:
    """Flush, answering a uid (a tenant's, an endpoint's) another request took meanwhile
    with ``taken(uid)``, a 409, not a 500."""
    try:
        await session.flush()
    except IntegrityError as exc:
        if uid is None:
            raise
        raise taken(uid) from exc


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


async def list_tenants(
    session: AsyncSession, *, limit: int, after: int | None, newest_first: bool = False
) -> list[Tenant]:
    return await repository.page(session, limit=limit, after=after, newest_first=newest_first)


async def delete_tenant(session: AsyncSession, *, tenant_id: int) -> None:
    """Delete a tenant with everything it owns (the database cascades)."""
    await session.delete(await get_tenant(session, tenant_id=tenant_id))
    await session.flush()


async def update_tenant(session: AsyncSession, *, tenant_id: int, data: TenantUpdate) -> Tenant:
    tenant = await get_tenant(session, tenant_id=tenant_id)
    values = changes(
        data, not_null=("name", "email", "rate_limit", "strict_event_types", "delivery_format")
    )
    uid = values.get("uid")
    if uid is not None and await repository.uid_taken(session, uid=uid, other_than=tenant.id):
        raise _uid_taken(uid)
    if "metadata" in values:
        tenant.labels = values.pop("metadata")
    for field, value in values.items():
        setattr(tenant, field, value)
    await flush_uid(session, uid, _uid_taken)
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


def live_previous_expiry(holder: Tenant | Endpoint) -> dt.datetime | None:
    """When the previous secret (of a tenant, or of an endpoint's own) stops signing, if it
    still does."""
    expires = holder.previous_secret_expires_at
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
    secret_key = rotate_on(
        tenant, current_encrypted=tenant.secret_encrypted, grace=grace, secrets=secrets
    )
    await session.flush()
    return tenant, secret_key


def rotate_on(
    holder: Tenant | Endpoint,
    *,
    current_encrypted: str,
    grace: dt.timedelta,
    secrets: ServerSecrets,
    secret_key: str | None = None,
) -> str:
    """Give a tenant, or an endpoint, a new signing secret (``secret_key``, or a new one):
    ``current_encrypted`` keeps signing next to it until ``now + grace``. The new secret."""
    secret_key = secret_key or generate_secret()
    if grace.total_seconds() > 0:
        holder.previous_secret_encrypted = current_encrypted
        holder.previous_secret_expires_at = utcnow() + grace
    else:
        holder.previous_secret_encrypted = None
        holder.previous_secret_expires_at = None
    holder.secret_encrypted = secrets.box.encrypt(secret_key)
    return secret_key
