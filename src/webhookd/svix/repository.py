"""Idempotent responses (the Svix API's ``idempotency-key``), each its caller's."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.models import IdempotentResponse


async def get(
    session: AsyncSession, *, caller: str, key: str, since: dt.datetime
) -> IdempotentResponse | None:
    """The answer remembered for this caller and key, if given after ``since``."""
    return await session.scalar(
        select(IdempotentResponse).where(
            IdempotentResponse.caller == caller,
            IdempotentResponse.key == key,
            IdempotentResponse.created_at > since,
        )
    )


async def insert(session: AsyncSession, values: dict[str, Any], *, expired: dt.datetime) -> None:
    """Remember an answer (unless one is already remembered under its caller and key: a
    concurrent request's); answers older than ``expired`` are dropped first, the caller's
    under this key and a hundred others."""
    await session.execute(
        delete(IdempotentResponse).where(
            IdempotentResponse.caller == values["caller"],
            IdempotentResponse.key == values["key"],
            IdempotentResponse.created_at <= expired,
        )
    )
    stale = (
        select(IdempotentResponse.id)
        .where(IdempotentResponse.created_at <= expired)
        .order_by(IdempotentResponse.created_at)
        .limit(100)
        .scalar_subquery()
    )
    await session.execute(delete(IdempotentResponse).where(IdempotentResponse.id.in_(stale)))
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(
        dialect.insert(IdempotentResponse)
        .values(values)
        .on_conflict_do_nothing(index_elements=["caller", "key"])
    )
