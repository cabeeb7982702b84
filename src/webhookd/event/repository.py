"""Event rows, always through the tenant that published them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.models import Event


async def get(session: AsyncSession, *, tenant_id: int, event_id: str) -> Event | None:
    """By the publisher's event_id."""
    return await session.scalar(
        select(Event).where(Event.tenant_id == tenant_id, Event.event_id == event_id)
    )


async def page(
    session: AsyncSession,
    *,
    tenant_id: int,
    event_type: str | None,
    limit: int,
    cursor: int | None,
) -> list[Event]:
    """Newest first."""
    query = select(Event).where(Event.tenant_id == tenant_id).order_by(Event.id.desc()).limit(limit)
    if event_type:
        query = query.where(Event.event_type == event_type)
    if cursor is not None:
        query = query.where(Event.id < cursor)
    return list((await session.execute(query)).scalars())
