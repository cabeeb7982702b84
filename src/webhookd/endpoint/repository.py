"""Endpoint rows, always through the tenant that owns them."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.models import Endpoint, EndpointKind

# The tenant's own endpoints: not its hidden operational-webhook endpoint.
OWN = Endpoint.kind == EndpointKind.WEBHOOK


async def get(session: AsyncSession, *, tenant_id: int, public_id: uuid.UUID) -> Endpoint | None:
    return await session.scalar(
        select(Endpoint).where(
            Endpoint.tenant_id == tenant_id, Endpoint.public_id == public_id, OWN
        )
    )


async def count(session: AsyncSession, *, tenant_id: int) -> int:
    query = select(func.count()).select_from(Endpoint).where(Endpoint.tenant_id == tenant_id, OWN)
    return int(await session.scalar(query) or 0)


async def page(
    session: AsyncSession, *, tenant_id: int, limit: int, after: int | None
) -> list[Endpoint]:
    """Oldest first."""
    query = (
        select(Endpoint)
        .where(Endpoint.tenant_id == tenant_id, OWN)
        .order_by(Endpoint.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Endpoint.id > after)
    return list((await session.execute(query)).scalars())
