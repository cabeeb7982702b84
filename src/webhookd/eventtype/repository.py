"""Event-type rows, always through the tenant that owns them (``tenant_id`` None: the
deployment's own catalog, which the Svix API's event types are)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from webhookd.models import EventTypeDef, Tenant


def _owned_by(tenant_id: int | None) -> ColumnElement[bool]:
    if tenant_id is None:
        return EventTypeDef.tenant_id.is_(None)
    return EventTypeDef.tenant_id == tenant_id


async def get(session: AsyncSession, *, tenant_id: int | None, name: str) -> EventTypeDef | None:
    return await session.scalar(
        select(EventTypeDef).where(_owned_by(tenant_id), EventTypeDef.name == name)
    )


async def page(
    session: AsyncSession,
    *,
    tenant_id: int | None,
    include_archived: bool,
    limit: int,
    after: int | None,
    newest_first: bool = False,
) -> list[EventTypeDef]:
    """In creation order, oldest first (``after``: past that row id); or newest first
    (``after``: before it)."""
    order = EventTypeDef.id.desc() if newest_first else EventTypeDef.id
    query = select(EventTypeDef).where(_owned_by(tenant_id)).order_by(order).limit(limit)
    if not include_archived:
        query = query.where(EventTypeDef.archived.is_(False))
    if after is not None:
        query = query.where(EventTypeDef.id < after if newest_first else EventTypeDef.id > after)
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


async def count(session: AsyncSession, *, tenant_id: int | None) -> int:
    query = select(func.count()).select_from(EventTypeDef).where(_owned_by(tenant_id))
    return int(await session.scalar(query) or 0)
