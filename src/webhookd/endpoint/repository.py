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


async def get_by_uid(session: AsyncSession, *, tenant_id: int, uid: str) -> Endpoint | None:
    return await session.scalar(
        select(Endpoint).where(Endpoint.tenant_id == tenant_id, Endpoint.uid == uid, OWN)
    )


async def uid_taken(
    session: AsyncSession, *, tenant_id: int, uid: str, other_than: int | None = None
) -> bool:
    query = select(Endpoint.id).where(Endpoint.tenant_id == tenant_id, Endpoint.uid == uid)
    if other_than is not None:
        query = query.where(Endpoint.id != other_than)
    return (await session.scalar(query)) is not None


async def count(session: AsyncSession, *, tenant_id: int) -> int:
    query = select(func.count()).select_from(Endpoint).where(Endpoint.tenant_id == tenant_id, OWN)
    return int(await session.scalar(query) or 0)


async def page(
    session: AsyncSession,
    *,
    tenant_id: int,
    limit: int,
    after: int | None,
    newest_first: bool = False,
) -> list[Endpoint]:
    """Oldest first (``after``: past that row id); or newest first (``after``: before it)."""
    query = (
        select(Endpoint)
        .where(Endpoint.tenant_id == tenant_id, OWN)
        .order_by(Endpoint.id.desc() if newest_first else Endpoint.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Endpoint.id < after if newest_first else Endpoint.id > after)
    return list((await session.execute(query)).scalars())
