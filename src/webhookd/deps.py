"""Dependency aliases used by the routes: sessions, settings, and who is calling."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.config import Settings
from webhookd.db import Database
from webhookd.errors import AppError, NotFound, Unauthorized
from webhookd.event.batcher import PublishBatcher
from webhookd.queue.base import DeliveryQueue
from webhookd.ratelimit import RateLimiter
from webhookd.security import ServerSecrets, hash_api_key, keys_equal
from webhookd.tenant.keycache import ApiKeyCache, AuthTenant

api_key_header = APIKeyHeader(
    name="X-API-Key",
    scheme_name="ApiKey",
    auto_error=False,
    description="A tenant's API key (whk_...)",
)
admin_key_header = APIKeyHeader(
    name="X-Admin-Key",
    scheme_name="AdminKey",
    auto_error=False,
    description="The operator's admin key",
)


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_queue(request: Request) -> DeliveryQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


async def get_rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter  # type: ignore[no-any-return]


async def get_publisher(request: Request) -> PublishBatcher:
    return request.app.state.publisher  # type: ignore[no-any-return]


async def get_secrets(request: Request) -> ServerSecrets:
    return request.app.state.secrets  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
SecretsDep = Annotated[ServerSecrets, Depends(get_secrets)]
PublisherDep = Annotated[PublishBatcher, Depends(get_publisher)]
DatabaseDep = Annotated[Database, Depends(get_database)]
QueueDep = Annotated[DeliveryQueue, Depends(get_queue)]
RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


async def read_session(db: DatabaseDep) -> AsyncIterator[AsyncSession]:
    async with db.read() as session:
        yield session


async def write_session(db: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """Commit at the boundary: committed after the route returns, before the response is sent."""
    async with db.write() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(read_session, scope="function")]
WriteSessionDep = Annotated[AsyncSession, Depends(write_session, scope="function")]


def _is_admin(request: Request, given: str | None) -> bool:
    return given is not None and keys_equal(given, request.app.state.admin_key)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _check_throttle(request: Request) -> None:
    """Refuse an address that failed authentication too often (before looking at its key)."""
    wait = request.app.state.auth_throttle.blocked_for(_client(request))
    if wait > 0:
        raise AppError(
            "too many failed authentication attempts from this address; try again later",
            status_code=429,
            code="auth_throttled",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def _auth_failed(request: Request, message: str) -> Unauthorized:
    request.app.state.auth_throttle.record_failure(_client(request))
    return Unauthorized(message)


async def require_admin(
    request: Request, admin_key: Annotated[str | None, Depends(admin_key_header)]
) -> None:
    if not admin_key:
        raise Unauthorized("missing X-Admin-Key header")
    _check_throttle(request)
    if not _is_admin(request, admin_key):
        raise _auth_failed(request, "invalid admin key")


async def _tenant_for_key(request: Request, api_key: str) -> AuthTenant | None:
    """The key's tenant: from this process's cache of authenticated keys, else from the
    database (this runs on every tenant request)."""
    state = request.app.state
    cache: ApiKeyCache = state.key_cache
    key_hash = hash_api_key(api_key, state.secrets.pepper)
    return cache.get(key_hash) or await cache.load(key_hash)


async def require_tenant(
    request: Request, api_key: Annotated[str | None, Depends(api_key_header)]
) -> AuthTenant:
    # app.state is read directly, not through sub-dependencies: this is the publish hot path.
    if not api_key:
        raise Unauthorized("missing X-API-Key header")
    _check_throttle(request)
    tenant = await _tenant_for_key(request, api_key)
    if tenant is None:
        raise _auth_failed(request, "invalid API key")
    return tenant


async def get_key_cache(request: Request) -> ApiKeyCache:
    return request.app.state.key_cache  # type: ignore[no-any-return]


KeyCacheDep = Annotated[ApiKeyCache, Depends(get_key_cache)]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling a tenant-scoped route: the operator (admin key) or one tenant."""

    tenant_id: int | None  # None for the admin

    def check_tenant(self, tenant_id: int) -> None:
        """Another tenant's id looks exactly like a missing one: 404, never 403."""
        if self.tenant_id is not None and self.tenant_id != tenant_id:
            raise NotFound(f"tenant {tenant_id} not found")


async def require_principal(
    request: Request,
    api_key: Annotated[str | None, Depends(api_key_header)],
    admin_key: Annotated[str | None, Depends(admin_key_header)],
) -> Principal:
    if admin_key:
        await require_admin(request, admin_key)
        return Principal(tenant_id=None)
    tenant = await require_tenant(request, api_key)
    return Principal(tenant_id=tenant.id)


AdminDep = Annotated[None, Depends(require_admin)]
TenantDep = Annotated[AuthTenant, Depends(require_tenant)]
PrincipalDep = Annotated[Principal, Depends(require_principal)]
