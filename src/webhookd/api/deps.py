"""Dependency aliases used by the routes: the runtime, sessions, and who is calling."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.config import Settings
from webhookd.delivery.service import DeliveryService
from webhookd.errors import AppError, NotFound, Unauthorized
from webhookd.runtime import Runtime
from webhookd.schemas import NO_NUL_PATTERN
from webhookd.security import ServerSecrets, hash_api_key, keys_equal
from webhookd.tenant.keycache import REF_PREFIX, ApiKeyCache, AuthTenant

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


@dataclass(frozen=True, slots=True)
class AppConfig:
    """What the app knows before its lifespan starts (``create_app``)."""

    settings: Settings
    secrets: ServerSecrets
    admin_key: str


def app_config(app: FastAPI) -> AppConfig:
    config = app.state.config
    assert isinstance(config, AppConfig)
    return config


def app_runtime(app: FastAPI) -> Runtime:
    """The runtime the app's lifespan built."""
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return app_runtime(request.app)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


async def get_secrets(runtime: RuntimeDep) -> ServerSecrets:
    return runtime.secrets


async def get_deliveries(runtime: RuntimeDep) -> DeliveryService:
    return runtime.deliveries


async def get_key_cache(runtime: RuntimeDep) -> ApiKeyCache:
    return runtime.key_cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
SecretsDep = Annotated[ServerSecrets, Depends(get_secrets)]
DeliveriesDep = Annotated[DeliveryService, Depends(get_deliveries)]
KeyCacheDep = Annotated[ApiKeyCache, Depends(get_key_cache)]


async def read_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.db.read() as session:
        yield session


async def write_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """Commit at the boundary: committed after the route returns, before the response is
    sent; what the route registered with ``db.after_commit`` runs after the commit."""
    async with runtime.db.write() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(read_session, scope="function")]
WriteSessionDep = Annotated[AsyncSession, Depends(write_session, scope="function")]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _check_throttle(request: Request, runtime: Runtime) -> None:
    """Refuse an address that failed authentication too often (before looking at its key)."""
    wait = runtime.auth_throttle.blocked_for(client_address(request))
    if wait > 0:
        raise AppError(
            "too many failed authentication attempts from this address; try again later",
            status_code=429,
            code="auth_throttled",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def _auth_failed(request: Request, runtime: Runtime, message: str) -> Unauthorized:
    runtime.auth_throttle.record_failure(client_address(request))
    return Unauthorized(message)


def check_admin_key(request: Request, admin_key: str) -> None:
    """The operator's key, or a 401 (429 once the address failed too often)."""
    runtime = app_runtime(request.app)
    _check_throttle(request, runtime)
    if not keys_equal(admin_key, app_config(request.app).admin_key):
        raise _auth_failed(request, runtime, "invalid admin key")


async def require_admin(
    request: Request, admin_key: Annotated[str | None, Depends(admin_key_header)]
) -> None:
    if not admin_key:
        raise Unauthorized("missing X-Admin-Key header")
    check_admin_key(request, admin_key)


async def require_tenant(
    request: Request, api_key: Annotated[str | None, Depends(api_key_header)]
) -> AuthTenant:
    # The runtime is read directly, not through sub-dependencies: this is the publish hot path.
    if not api_key:
        raise Unauthorized("missing X-API-Key header")
    runtime = app_runtime(request.app)
    _check_throttle(request, runtime)
    # This process's cache of authenticated keys, else the database.
    key_hash = hash_api_key(api_key, runtime.secrets.pepper)
    tenant = runtime.key_cache.get(key_hash) or await runtime.key_cache.load(key_hash)
    if tenant is None:
        raise _auth_failed(request, runtime, "invalid API key")
    return tenant


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling a tenant-scoped route: the operator (admin key) or one tenant."""

    tenant: AuthTenant | None  # None for the admin

    @property
    def is_admin(self) -> bool:
        return self.tenant is None


async def require_principal(
    request: Request,
    api_key: Annotated[str | None, Depends(api_key_header)],
    admin_key: Annotated[str | None, Depends(admin_key_header)],
) -> Principal:
    if admin_key:
        await require_admin(request, admin_key)
        return Principal(tenant=None)
    return Principal(tenant=await require_tenant(request, api_key))


AdminDep = Annotated[None, Depends(require_admin)]
TenantDep = Annotated[AuthTenant, Depends(require_tenant)]
PrincipalDep = Annotated[Principal, Depends(require_principal)]


async def tenant_named(runtime: Runtime, ref: str) -> AuthTenant:
    """The tenant an operator's request names by id or uid (404 if none), from the cache
    of recently named tenants, else the database."""
    key = REF_PREFIX + ref
    tenant = runtime.key_cache.get(key) or await runtime.key_cache.load(key)
    if tenant is None:
        raise NotFound(f"tenant {ref!r} not found")
    return tenant


TenantPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=NO_NUL_PATTERN,
        description="The tenant's id (`tnt_…`) or its uid",
    ),
]


async def path_tenant(
    tenant_id: TenantPath, principal: PrincipalDep, runtime: RuntimeDep
) -> AuthTenant:
    """The tenant of a ``/tenants/{tenant_id}/…`` path: the caller's own (a tenant key), or
    any (the admin key). Another tenant's id looks exactly like a missing one: 404."""
    if principal.tenant is not None:
        if not principal.tenant.is_named_by(tenant_id):
            raise NotFound(f"tenant {tenant_id!r} not found")
        return principal.tenant
    return await tenant_named(runtime, tenant_id)


PathTenantDep = Annotated[AuthTenant, Depends(path_tenant)]


async def admin_path_tenant(tenant_id: TenantPath, _: AdminDep, runtime: RuntimeDep) -> AuthTenant:
    """The tenant of a ``/tenants/{tenant_id}`` path that only the operator may change."""
    return await tenant_named(runtime, tenant_id)


AdminPathTenantDep = Annotated[AuthTenant, Depends(admin_path_tenant)]
