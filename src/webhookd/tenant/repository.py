"""Tenant rows. A tenant is found by its public id (`tnt_…`), its uid, or the keyed hash of
its API key; the row id stays inside."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from webhookd.ids import Kind, parse_id
from webhookd.models import Tenant

_AUTH_COLUMNS = (Tenant.id, Tenant.rate_limit, Tenant.public_id, Tenant.uid)
_BY_KEY_HASH = select(*_AUTH_COLUMNS).where(Tenant.api_key_hash == bindparam("h"))

AuthRow = tuple[int, int, uuid.UUID, str | None]  # id, rate_limit, public_id, uid


async def get(session: AsyncSession, *, tenant_id: int) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


def _by_ref(ref: str) -> ColumnElement[bool]:
    """The condition naming a tenant by its public id or, failing that, its uid."""
    public_id = parse_id(Kind.TENANT, ref)
    return Tenant.public_id == public_id if public_id is not None else Tenant.uid == ref


async def get_by_ref(session: AsyncSession, *, ref: str) -> Tenant | None:
    """A tenant named by its public id or its uid."""
    return await session.scalar(select(Tenant).where(_by_ref(ref)))


async def auth_row_by_ref(engine: AsyncEngine, ref: str) -> AuthRow | None:
    """What authenticating as this tenant knows of it, named by public id or uid (the
    operator publishing for a tenant)."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(*_AUTH_COLUMNS).where(_by_ref(ref)))).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


async def uid_taken(session: AsyncSession, *, uid: str, other_than: int | None = None) -> bool:
    query = select(Tenant.id).where(Tenant.uid == uid)
    if other_than is not None:
        query = query.where(Tenant.id != other_than)
    return (await session.scalar(query)) is not None


async def exists(session: AsyncSession, *, tenant_id: int) -> bool:
    found = await session.scalar(select(Tenant.id).where(Tenant.id == tenant_id))
    return found is not None


async def page(
    session: AsyncSession, *, limit: int, after: int | None, newest_first: bool = False
) -> list[Tenant]:
    """Every tenant (the operator's list), oldest first (``after``: past that row id); or
    newest first (``after``: before it)."""
    query = select(Tenant).order_by(Tenant.id.desc() if newest_first else Tenant.id).limit(limit)
    if after is not None:
        query = query.where(Tenant.id < after if newest_first else Tenant.id > after)
    return list((await session.execute(query)).scalars())


async def auth_row_by_key_hash(engine: AsyncEngine, key_hash: str) -> AuthRow | None:
    """The tenant whose API key has this keyed hash: a Core query on a bare connection
    (every uncached tenant request authenticates with it)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_BY_KEY_HASH, {"h": key_hash})).first()
    return None if row is None else (row[0], row[1], row[2], row[3])
