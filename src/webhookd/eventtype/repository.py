"""Event-type rows, always through the tenant that owns them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from webhookd.models import EventTypeDef, Tenant


async def get(session: AsyncSession, *, tenant_id: int, name: str) -> EventTypeDef | None:
    return await session.scalar(
        select(EventTypeDef).where(EventTypeDef.tenant_id == tenant_id, EventTypeDef.name == name)
    )


async def page(
    session: AsyncSession, *, tenant_id: int, include_archived: bool, limit: int, after: int | None
) -> list[EventTypeDef]:
    """By name's creation order (oldest first)."""
    query = (
        select(EventTypeDef)
        .where(EventTypeDef.tenant_id == tenant_id)
        .order_by(EventTypeDef.id)
        .limit(limit)
    )
    if not include_archived:
        query = query.where(EventTypeDef.archived.is_(False))
    if after is not None:
        query = query.where(EventTypeDef.id > after)
    return list((await session.execute(query)).scalars())


async def catalog_rows(
    engine: AsyncEngine, tenant_id: int
) -> tuple[bool, list[tuple[str, dict[str, Any] | None, bool]]] | None:
    """The tenant's strict_event_types and its types (name, schema, archived); None if the
    tenant does not exist."""
    async with engine.connect() as conn:
        strict = await conn.scalar(select(Tenant.strict_event_types).where(Tenant.id == tenant_id))
        if strict is None:
            return None
        rows = await conn.execute(
            select(EventTypeDef.name, EventTypeDef.schema, EventTypeDef.archived).where(
                EventTypeDef.tenant_id == tenant_id
            )
        )
        return bool(strict), [(name, schema, bool(archived)) for name, schema, archived in rows]


async def count(session: AsyncSession, *, tenant_id: int) -> int:
    query = (
        select(func.count()).select_from(EventTypeDef).where(EventTypeDef.tenant_id == tenant_id)
    )
    return int(await session.scalar(query) or 0)
