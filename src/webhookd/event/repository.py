"""Event rows, always through the tenant that published them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select
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
    """Newest first, published in [since, until]; ``before`` is the row id of the last
    event of the previous page.

    Without a time window, newest means by row id. With one, it means by publication
    time (row id among equals), read from ``ix_events_tenant_id_created_at_id`` at the
    window's end or at the cursor's event: a window far back would otherwise walk back
    through every newer event by row id before finding the first that matches."""
    query = (
        select(Event).where(Event.tenant_id == tenant_id, Event.operational.is_(False)).limit(limit)
    )
    if event_type:
        query = query.where(Event.event_type == event_type)
    if since is None and until is None:
        query = query.order_by(Event.id.desc())
        if before is not None:
            query = query.where(Event.id < before)
        return list((await session.execute(query)).scalars())
    query = query.order_by(Event.created_at.desc(), Event.id.desc())
    if since is not None:
        query = query.where(Event.created_at >= since)
    if until is not None:
        query = query.where(Event.created_at <= until)
    if before is not None:
        at = select(Event.created_at).where(Event.id == before).scalar_subquery()
        # (created_at, id) < (at, before), with a plain range on created_at for the index.
        query = query.where(Event.created_at <= at, or_(Event.created_at < at, Event.id < before))
    return list((await session.execute(query)).scalars())


async def by_ids(session: AsyncSession, *, tenant_id: int, ids: Sequence[int]) -> list[Event]:
    """The tenant's events with these row ids (in no particular order)."""
    if not ids:
        return []
    query = select(Event).where(
        Event.tenant_id == tenant_id, Event.operational.is_(False), Event.id.in_(list(ids))
    )
    return list((await session.execute(query)).scalars())
