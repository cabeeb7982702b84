"""Portal links: a random token (only its hash stored), exchanged once for a portal session
of its tenant, scoped to some endpoints or to all, refused once expired, once used, or once
the tenant's API key has been rotated since it was issued."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import utcnow
from webhookd.endpoint.service import get_endpoint
from webhookd.errors import Unauthorized
from webhookd.ids import Kind, format_id
from webhookd.models import PortalToken
from webhookd.portal import repository

TOKEN_PREFIX = "whptl_"  # noqa: S105 - a prefix, not a secret


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_fingerprint(api_key_hash: str) -> str:
    """What ties a link or a portal session to the tenant's current API key."""
    return hashlib.sha256(b"portal:" + api_key_hash.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Grant:
    """What a portal session may see: one tenant, its endpoints (or only these), until."""

    tenant_id: int
    endpoint_ids: tuple[str, ...] | None
    key_fingerprint: str
    expires_at: dt.datetime


async def create_link(
    session: AsyncSession, *, tenant_id: int, endpoint_ids: list[str] | None, ttl: int
) -> tuple[str, PortalToken]:
    """A new one-time link of the tenant; its token (shown once) and row. Every endpoint of
    the scope must be the tenant's (404 otherwise)."""
    scope = None
    if endpoint_ids is not None:
        scope = []
        for ref in dict.fromkeys(endpoint_ids):
            endpoint = await get_endpoint(session, tenant_id=tenant_id, endpoint_id=ref)
            scope.append(format_id(Kind.ENDPOINT, endpoint.public_id))
    key_hash = await repository.api_key_hash(session, tenant_id=tenant_id)
    assert key_hash is not None  # the caller is this tenant
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = PortalToken(
        tenant_id=tenant_id,
        token_hash=token_hash(token),
        endpoint_ids=scope,
        key_fingerprint=key_fingerprint(key_hash),
        expires_at=now + dt.timedelta(seconds=ttl),
        created_at=now,
    )
    await repository.insert_token(session, row)
    return token, row


def link_url(base_url: str, token: str) -> str:
    """Where the one-time link ``token`` opens the portal, on the server at ``base_url``."""
    return base_url.rstrip("/") + f"/portal/start?token={token}"


REFUSED = "this portal link has expired, was already used, or its tenant's API key changed"


async def exchange(session: AsyncSession, *, token: str) -> Grant:
    """Use the link's token (once) for a portal grant; 401 if it cannot be used."""
    row = await repository.use_token(session, token_hash=token_hash(token), now=utcnow())
    if row is None:
        raise Unauthorized(REFUSED)
    grant = Grant(
        tenant_id=row.tenant_id,
        endpoint_ids=tuple(row.endpoint_ids) if row.endpoint_ids is not None else None,
        key_fingerprint=row.key_fingerprint,
        expires_at=row.expires_at,
    )
    await check(session, grant)
    return grant


async def check(session: AsyncSession, grant: Grant) -> None:
    """The grant is still good: unexpired, and the tenant's API key unchanged."""
    key_hash = await repository.api_key_hash(session, tenant_id=grant.tenant_id)
    if (
        key_hash is None
        or grant.expires_at <= utcnow()
        or not secrets.compare_digest(key_fingerprint(key_hash), grant.key_fingerprint)
    ):
        raise Unauthorized(REFUSED)
