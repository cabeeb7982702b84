"""Endpoint rows, always through the tenant that owns them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.models import Endpoint


async def get(session: AsyncSession, *, tenant_id: int, endpoint_id: int) -> Endpoint | None:
    return await session.scalar(
        select(Endpoint).where(Endpoint.tenant_id == tenant_id, Endpoint.id == endpoint_id)
    )


async def count(session: AsyncSession, *, tenant_id: int) -> int:
    query = select(func.count()).select_from(Endpoint).where(Endpoint.tenant_id == tenant_id)
    return int(await session.scalar(query) or 0)


async def page(
    session: AsyncSession, *, tenant_id: int, limit: int, cursor: int | None
) -> list[Endpoint]:
    query = (
        select(Endpoint).where(Endpoint.tenant_id == tenant_id).order_by(Endpoint.id).limit(limit)
    )
    if cursor is not None:
        query = query.where(Endpoint.id > cursor)
    return list((await session.execute(query)).scalars())
