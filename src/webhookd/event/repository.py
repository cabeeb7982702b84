"""Event rows, always through the tenant that published them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.models import Event


async def get(session: AsyncSession, *, tenant_id: int, event_id: str) -> Event | None:
    """By the publisher's event_id."""
    return await session.scalar(
        select(Event).where(Event.tenant_id == tenant_id, Event.event_id == event_id)
    )


async def get_by_public_id(
    session: AsyncSession, *, tenant_id: int, public_id: uuid.UUID
) -> Event | None:
    return await session.scalar(
        select(Event).where(Event.tenant_id == tenant_id, Event.public_id == public_id)
    )


async def page(
    session: AsyncSession,
    *,
    tenant_id: int,
    event_type: str | None,
    limit: int,
    before: int | None,
) -> list[Event]:
    """Newest first."""
    query = (
        select(Event)
        .where(Event.tenant_id == tenant_id, Event.operational.is_(False))
        .order_by(Event.id.desc())
        .limit(limit)
    )
    if event_type:
        query = query.where(Event.event_type == event_type)
    if before is not None:
        query = query.where(Event.id < before)
    return list((await session.execute(query)).scalars())


async def search(
    session: AsyncSession,
    *,
    tenant_id: int,
    event_type: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    before: int | None,
) -> list[Event]:
    """Newest first (by row id, the position a cursor holds), published in [since, until]."""
    query = (
        select(Event)
        .where(Event.tenant_id == tenant_id, Event.operational.is_(False))
        .order_by(Event.id.desc())
        .limit(limit)
    )
    if event_type:
        query = query.where(Event.event_type == event_type)
    if since is not None:
        query = query.where(Event.created_at >= since)
    if until is not None:
        query = query.where(Event.created_at <= until)
    if before is not None:
        query = query.where(Event.id < before)
    return list((await session.execute(query)).scalars())


async def by_ids(session: AsyncSession, *, tenant_id: int, ids: Sequence[int]) -> list[Event]:
    """The tenant's events with these row ids (in no particular order)."""
    if not ids:
        return []
    query = select(Event).where(
        Event.tenant_id == tenant_id, Event.operational.is_(False), Event.id.in_(list(ids))
    )
    return list((await session.execute(query)).scalars())
