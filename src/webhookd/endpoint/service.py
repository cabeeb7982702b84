"""Endpoints: every query starts from the tenant that owns them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.config import Settings
from webhookd.delivery import ssrf
from webhookd.endpoint import repository
from webhookd.endpoint.schemas import EndpointCreate, EndpointUpdate
from webhookd.errors import Conflict, NotFound, Unprocessable
from webhookd.models import Endpoint
from webhookd.schemas import changes as schema_changes
from webhookd.tenant.service import ensure_tenant


async def check_url(url: str, settings: Settings) -> str:
    """Refuse URLs that are not http(s) or that point into private networks (422)."""
    try:
        target = ssrf.parse_target(url)
        if not settings.allow_private_targets:
            allowed = settings.allowed_network_list
            ssrf.check_literal(target, allow_private=False, allow_networks=allowed)
            if target.literal_ip is None:
                await ssrf.resolve_checked(
                    target.host, target.port, allow_private=False, allow_networks=allowed
                )
    except ssrf.TargetRefused as exc:
        raise Unprocessable(
            f"url: {exc.reason}",
            fields=[{"field": "url", "location": "body", "message": exc.reason}],
        ) from exc
    return url


async def create_endpoint(
    session: AsyncSession, *, tenant_id: int, data: EndpointCreate, settings: Settings
) -> Endpoint:
    await ensure_tenant(session, tenant_id=tenant_id)
    await check_url(data.url, settings)
    count = await repository.count(session, tenant_id=tenant_id)
    if count >= settings.max_endpoints_per_tenant:
        raise Conflict(
            f"tenant {tenant_id} already has {count} endpoints "
            f"(limit {settings.max_endpoints_per_tenant})"
        )
    endpoint = Endpoint(tenant_id=tenant_id, **data.model_dump())
    session.add(endpoint)
    await session.flush()
    return endpoint


async def get_endpoint(session: AsyncSession, *, tenant_id: int, endpoint_id: int) -> Endpoint:
    endpoint = await repository.get(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    if endpoint is None:
        raise NotFound(f"endpoint {endpoint_id} not found")
    return endpoint


async def list_endpoints(
    session: AsyncSession, *, tenant_id: int, limit: int, cursor: int | None
) -> list[Endpoint]:
    await ensure_tenant(session, tenant_id=tenant_id)
    return await repository.page(session, tenant_id=tenant_id, limit=limit, cursor=cursor)


async def update_endpoint(
    session: AsyncSession,
    *,
    tenant_id: int,
    endpoint_id: int,
    data: EndpointUpdate,
    settings: Settings,
) -> Endpoint:
    endpoint = await get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    changes = schema_changes(data, not_null=("url", "event_types", "is_active"))
    if "url" in changes:
        await check_url(changes["url"], settings)
    for field, value in changes.items():
        setattr(endpoint, field, value)
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, *, tenant_id: int, endpoint_id: int) -> None:
    """Delete an endpoint with its deliveries, attempts and dead letters."""
    endpoint = await get_endpoint(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    await session.delete(endpoint)
    await session.flush()
