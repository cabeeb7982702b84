"""Portal links, each its tenant's."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import cross_tenant
from webhookd.models import PortalToken, Tenant


async def insert_token(session: AsyncSession, token: PortalToken) -> None:
    session.add(token)
    await session.flush()


@cross_tenant("a link is found by its secret hash before its tenant is known")
async def use_token(
    session: AsyncSession, *, token_hash: str, now: dt.datetime
) -> PortalToken | None:
    """Mark the unexpired, unused link with this hash used; the link, or None if there is
    no such link (or it was used, or it expired). One statement: two exchanges of one link
    at once cannot both succeed."""
    result = await session.execute(
        update(PortalToken)
        .where(
            PortalToken.token_hash == token_hash,
            PortalToken.used_at.is_(None),
            PortalToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(PortalToken.id)
    )
    used = result.scalar_one_or_none()
    if used is None:
        return None
    return await session.get(PortalToken, used)


async def api_key_hash(session: AsyncSession, *, tenant_id: int) -> str | None:
    return await session.scalar(select(Tenant.api_key_hash).where(Tenant.id == tenant_id))
