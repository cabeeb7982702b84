"""Who calls the Svix API (``Authorization: Bearer <token>``), and the application a path
names: the operator's admin key sees every application (tenant), a tenant's API key only
its own, as on the native API (``api.deps.path_tenant``: another tenant's looks missing)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from webhookd.api.deps import (
    Principal,
    RuntimeDep,
    check_admin_key,
    path_tenant,
    require_tenant,
)
from webhookd.errors import AppError, Unauthorized
from webhookd.schemas import NO_NUL_PATTERN
from webhookd.security import API_KEY_PREFIX
from webhookd.svix.idempotency import ADMIN, MAX_KEY, Idempotency
from webhookd.tenant.keycache import AuthTenant

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="SvixBearer",
    description="The admin key (every application) or a tenant's API key (its own)",
)


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


async def svix_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The admin key, or a tenant's API key (``whk_…``), given as a bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing Authorization: Bearer header")
    token = credentials.credentials
    if token.startswith(API_KEY_PREFIX):
        return Principal(tenant=await require_tenant(request, token))
    check_admin_key(request, token)
    return Principal(tenant=None)


SvixPrincipalDep = Annotated[Principal, Depends(svix_principal)]

AppIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=NO_NUL_PATTERN,
        description="The application's id (`tnt_…`) or uid",
    ),
]


async def path_app(
    app_id: AppIdPath, principal: SvixPrincipalDep, runtime: RuntimeDep
) -> AuthTenant:
    """The application (tenant) of an ``/app/{app_id}/…`` path."""
    return await path_tenant(app_id, principal, runtime)


AppDep = Annotated[AuthTenant, Depends(path_app)]


def require_admin(principal: Principal, what: str) -> None:
    """Only the operator may ``what`` (a 403 for a tenant's key)."""
    if not principal.is_admin:
        raise Forbidden(f"only the admin key may {what}")


async def idempotency(
    request: Request,
    principal: SvixPrincipalDep,
    key: Annotated[
        str | None, Header(alias="idempotency-key", min_length=1, max_length=MAX_KEY)
    ] = None,
) -> Idempotency:
    """The ``idempotency-key`` of a POST, remembered per caller."""
    caller = ADMIN if principal.tenant is None else principal.tenant.ref
    return Idempotency.of(caller, key, method=request.method, path=request.url.path)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]
