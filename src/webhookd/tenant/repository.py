"""Tenant rows. A tenant is found by its id or by the keyed hash of its API key."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from webhookd.models import Tenant

_BY_KEY_HASH = select(Tenant.id, Tenant.rate_limit).where(Tenant.api_key_hash == bindparam("h"))


async def get(session: AsyncSession, *, tenant_id: int) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def exists(session: AsyncSession, *, tenant_id: int) -> bool:
    found = await session.scalar(select(Tenant.id).where(Tenant.id == tenant_id))
    return found is not None


async def page(session: AsyncSession, *, limit: int, cursor: int | None) -> list[Tenant]:
    """Every tenant (the operator's list), in id order."""
    query = select(Tenant).order_by(Tenant.id).limit(limit)
    if cursor is not None:
        query = query.where(Tenant.id > cursor)
    return list((await session.execute(query)).scalars())


async def id_and_rate_limit_by_key_hash(
    engine: AsyncEngine, key_hash: str
) -> tuple[int, int] | None:
    """(id, rate_limit) of the tenant whose API key has this keyed hash: a Core query on a
    bare connection (every uncached tenant request authenticates with it)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_BY_KEY_HASH, {"h": key_hash})).first()
    return None if row is None else (row[0], row[1])
