"""Endpoints: every query starts from the tenant that owns them.

An endpoint's URL is checked (and its host name resolved, for the SSRF guard) by
:func:`check`, which must run before the write transaction opens: a slow DNS answer must not
hold the database's write lock (SQLite) or a pooled connection (PostgreSQL) while other
tenants wait. The services that store a URL take only a :class:`Checked` body, so the
order is enforced by the types.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.config import Settings
from webhookd.delivery import ssrf
from webhookd.delivery.headers import REDACTED, decode_headers, encode_headers, looks_secret
from webhookd.endpoint import repository
from webhookd.endpoint.schemas import EndpointCreate, EndpointUpdate
from webhookd.errors import Conflict, NotFound, field_error
from webhookd.ids import Kind, parse_id
from webhookd.models import Endpoint
from webhookd.schemas import changes as schema_changes
from webhookd.security import ServerSecrets
from webhookd.tenant.service import (
    ensure_tenant,
    flush_uid,
    get_tenant,
    live_previous_expiry,
    rotate_on,
)

Body = TypeVar("Body", EndpointCreate, EndpointUpdate)


@dataclass(frozen=True, slots=True)
class Checked(Generic[Body]):
    """A create or update body whose URL (if any) passed :func:`check`."""

    data: Body


async def check_url(url: str, settings: Settings, *, field: str = "url") -> None:
    """Refuse URLs that are not http(s) or that point into private networks (a 422 naming
    ``field``). Resolves the host name within ``WEBHOOKD_DNS_TIMEOUT``: call it outside any
    transaction."""
    try:
        target = ssrf.parse_target(url)
        if not settings.allow_private_targets:
            allowed = settings.allowed_network_list
            ssrf.check_literal(target, allow_private=False, allow_networks=allowed)
            if target.literal_ip is None:
                await ssrf.resolve_checked(
                    target.host,
                    target.port,
                    allow_private=False,
                    allow_networks=allowed,
                    timeout=settings.dns_timeout,
                )
    except ssrf.TargetRefused as exc:
        raise field_error(field, exc.reason) from exc


async def check(data: Body, settings: Settings) -> Checked[Body]:
    """The body with its URL checked (an update without a URL has nothing to check)."""
    if data.url is not None:
        await check_url(data.url, settings)
    return Checked(data)


def endpoint_headers(endpoint: Endpoint, secrets: ServerSecrets) -> dict[str, str] | None:
    """The endpoint's custom headers, decrypted."""
    return decode_headers(endpoint.headers_encrypted, secrets.box.decrypt_cached)


def _store_headers(
    endpoint: Endpoint, headers: dict[str, str] | None, secrets: ServerSecrets
) -> None:
    """Replace the endpoint's custom headers. A secret-looking header whose value is
    REDACTED (as the API shows it) keeps its stored value."""
    stored = {k.lower(): v for k, v in (endpoint_headers(endpoint, secrets) or {}).items()}
    kept = {}
    for name, value in (headers or {}).items():
        if value == REDACTED:
            if not looks_secret(name) or name.lower() not in stored:
                raise field_error(
                    "headers", f"{name}: {REDACTED!r} stands for a stored secret value only"
                )
            value = stored[name.lower()]
        kept[name] = value
    endpoint.headers_encrypted = encode_headers(kept, secrets.box.encrypt)


def _uid_taken(uid: str) -> Conflict:
    return Conflict(f"uid {uid!r} is already another endpoint's", code="uid_taken")


async def _check_uid(
    session: AsyncSession, tenant_id: int, uid: str | None, other_than: int | None = None
) -> None:
    if uid is not None and await repository.uid_taken(
        session, tenant_id=tenant_id, uid=uid, other_than=other_than
    ):
        raise _uid_taken(uid)


async def create_endpoint(
    session: AsyncSession,
    *,
    tenant_id: int,
    checked: Checked[EndpointCreate],
    settings: Settings,
    secrets: ServerSecrets,
    secret_key: str | None = None,
) -> Endpoint:
    """A new endpoint; ``secret_key``: its own signing secret (none: its tenant's)."""
    data = checked.data
    await ensure_tenant(session, tenant_id=tenant_id)
    count = await repository.count(session, tenant_id=tenant_id)
    if count >= settings.max_endpoints_per_tenant:
        raise Conflict(
            f"the tenant already has {count} endpoints (limit {settings.max_endpoints_per_tenant})"
        )
    await _check_uid(session, tenant_id, data.uid)
    endpoint = Endpoint(
        tenant_id=tenant_id,
        labels=data.metadata,
        secret_encrypted=secrets.box.encrypt(secret_key) if secret_key else None,
        **data.model_dump(exclude={"headers", "metadata"}),
    )
    _store_headers(endpoint, data.headers, secrets)
    session.add(endpoint)
    await flush_uid(session, data.uid, _uid_taken)
    return endpoint


async def find_endpoint(
    session: AsyncSession, *, tenant_id: int, endpoint_id: str
) -> Endpoint | None:
    """The tenant's endpoint with this public id (``ep_…``) or uid, if there is one."""
    public_id = parse_id(Kind.ENDPOINT, endpoint_id)
    if public_id is not None:
        return await repository.get(session, tenant_id=tenant_id, public_id=public_id)
    return await repository.get_by_uid(session, tenant_id=tenant_id, uid=endpoint_id)


async def get_endpoint(session: AsyncSession, *, tenant_id: int, endpoint_id: str) -> Endpoint:
    """The tenant's endpoint with this public id (``ep_…``) or uid; 404 if none."""
    found = await find_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    if found is None:
        raise NotFound(f"endpoint {endpoint_id!r} not found")
    return found


async def endpoint_row_id(session: AsyncSession, *, tenant_id: int, endpoint_id: str) -> int:
    """The row id of the tenant's endpoint with this public id (404 if none)."""
    return (await get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)).id


async def list_endpoints(
    session: AsyncSession,
    *,
    tenant_id: int,
    limit: int,
    after: int | None,
    newest_first: bool = False,
) -> list[Endpoint]:
    return await repository.page(
        session, tenant_id=tenant_id, limit=limit, after=after, newest_first=newest_first
    )


async def update_endpoint(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: str,
    checked: Checked[EndpointUpdate],
    secrets: ServerSecrets,
) -> Endpoint:
    endpoint = await get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    changes = schema_changes(checked.data, not_null=("url", "event_types", "is_active", "ordering"))
    uid = changes.get("uid")
    await _check_uid(session, tenant_id, uid, other_than=endpoint.id)
    if "headers" in changes:
        _store_headers(endpoint, changes.pop("headers"), secrets)
    if "metadata" in changes:
        endpoint.labels = changes.pop("metadata")
    for field, value in changes.items():
        setattr(endpoint, field, value)
    await flush_uid(session, uid, _uid_taken)
    return endpoint


@dataclass(frozen=True, slots=True)
class EndpointSecret:
    endpoint: Endpoint
    secret_key: str
    previous_expires_at: dt.datetime | None  # until then the previous secret signs too


async def endpoint_secret(
    session: AsyncSession, *, tenant_id: int, endpoint_id: str, secrets: ServerSecrets
) -> EndpointSecret:
    """The secret the endpoint's deliveries are signed with: its own, else its tenant's."""
    endpoint = await get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    if endpoint.secret_encrypted is not None:
        own = secrets.box.decrypt(endpoint.secret_encrypted)
        return EndpointSecret(endpoint, own, live_previous_expiry(endpoint))
    tenant = await get_tenant(session, tenant_id=tenant_id)
    shared = secrets.box.decrypt(tenant.secret_encrypted)
    return EndpointSecret(endpoint, shared, live_previous_expiry(tenant))


async def rotate_endpoint_secret(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: str,
    grace: dt.timedelta,
    secrets: ServerSecrets,
    secret_key: str | None = None,
) -> EndpointSecret:
    """Give the endpoint a signing secret of its own (``secret_key``, or a new one); the
    one it signed with until now (its own, or its tenant's) keeps signing next to it until
    ``now + grace``, as a tenant's rotation does."""
    endpoint = await get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    current = endpoint.secret_encrypted
    if current is None:
        current = (await get_tenant(session, tenant_id=tenant_id)).secret_encrypted
    key = rotate_on(
        endpoint, current_encrypted=current, grace=grace, secrets=secrets, secret_key=secret_key
    )
    await session.flush()
    return EndpointSecret(endpoint, key, endpoint.previous_secret_expires_at)


async def delete_endpoint(session: AsyncSession, *, tenant_id: int, endpoint_id: str) -> None:
    """Delete an endpoint with its deliveries, attempts and dead letters."""
    endpoint = await get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    await session.delete(endpoint)
    await session.flush()
