"""``/api/v1/app``: Svix applications, which are webhookd tenants. Only the operator (admin
key) creates, changes and deletes them; a tenant's key reads its own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.api.deps import (
    KeyCacheDep,
    RuntimeDep,
    SecretsDep,
    SessionDep,
    WriteSessionDep,
)
from webhookd.errors import NotFound
from webhookd.models import DeliveryFormat, Tenant
from webhookd.security import ServerSecrets
from webhookd.svix.auth import AppDep, AppIdPath, IdempotencyDep, SvixPrincipalDep, require_admin
from webhookd.svix.convert import Position, application_out, paged, position
from webhookd.svix.errors import SvixRoute
from webhookd.svix.schemas import ApplicationIn, ApplicationOut, ApplicationPatch, ListResponse
from webhookd.svix.schemas import Ordering as OrderingParam
from webhookd.tenant import service as tenants
from webhookd.tenant.schemas import TenantCreate, TenantUpdate

router = APIRouter(prefix="/api/v1/app", tags=["svix"], route_class=SvixRoute)

# Svix applications have no email; webhookd's tenants need one (for the console).
SVIX_APP_EMAIL = "svix-app@webhookd.invalid"
Limit = Annotated[int, Query(ge=1, le=250)]
Iterator = Annotated[str | None, Query(max_length=64)]


async def _create(
    session: AsyncSession, data: ApplicationIn, secrets: ServerSecrets, uid: str | None
) -> Tenant:
    create = TenantCreate(
        name=data.name,
        email=SVIX_APP_EMAIL,
        uid=uid,
        delivery_format=DeliveryFormat.SVIX,
        metadata=data.metadata,
    )
    return (await tenants.create_tenant(session, data=create, secrets=secrets)).tenant


@router.post(
    "",
    status_code=201,
    response_model=ApplicationOut,
    responses={200: {"model": ApplicationOut, "description": "get_if_exists: the existing one"}},
)
async def create_app(
    data: ApplicationIn,
    principal: SvixPrincipalDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
    idem: IdempotencyDep,
    get_if_exists: Annotated[bool, Query()] = False,
) -> Response:
    """A new application: a tenant whose deliveries are in Svix's format (the payload as the
    body, `svix-*` headers). `get_if_exists=true` answers the application with this `uid`
    if there is one (200)."""
    require_admin(principal, "create applications")
    if (replay := await idem.replay(session)) is not None:
        return replay
    if get_if_exists and data.uid is not None:
        existing = await _find(session, data.uid)
        if existing is not None:
            return await idem.remember(session, 200, application_out(existing))
    tenant = await _create(session, data, secrets, data.uid)
    return await idem.remember(session, 201, application_out(tenant))


async def _find(session: AsyncSession, ref: str) -> Tenant | None:
    try:
        return await tenants.get_tenant_by_ref(session, ref=ref)
    except NotFound:
        return None


@router.get("", response_model=ListResponse[ApplicationOut])
async def list_apps(
    principal: SvixPrincipalDep,
    session: SessionDep,
    limit: Limit = 50,
    iterator: Iterator = None,
    order: OrderingParam = OrderingParam.ASCENDING,
) -> ListResponse[ApplicationOut]:
    """Every application (admin key), or the key's own."""
    own = principal.tenant

    async def fetch(n: int, at: Position) -> list[Tenant]:
        if own is not None:
            tenant = await tenants.get_tenant(session, tenant_id=own.id)
            return [tenant] if at.after is None else []
        return await tenants.list_tenants(
            session, limit=n, after=at.after, newest_first=at.newest_first
        )

    return await paged(
        fetch, lambda t: t.id, application_out, limit=limit, at=position(iterator, order)
    )


@router.get("/{app_id}", response_model=ApplicationOut)
async def get_app(app: AppDep, session: SessionDep) -> ApplicationOut:
    """An application by its id or uid (the admin key, or its own key)."""
    return application_out(await tenants.get_tenant(session, tenant_id=app.id))


async def _update(
    session: AsyncSession,
    tenant: Tenant,
    update: TenantUpdate,
    key_cache: KeyCacheDep,
    runtime: RuntimeDep,
) -> Tenant:
    key_cache.forget_on_commit(session, tenant.id)  # its cached uid
    runtime.catalog.forget_on_commit(session, tenant.id)
    return await tenants.update_tenant(session, tenant_id=tenant.id, data=update)


@router.put(
    "/{app_id}",
    response_model=ApplicationOut,
    responses={201: {"model": ApplicationOut, "description": "Created"}},
)
async def upsert_app(
    app_id: AppIdPath,
    data: ApplicationIn,
    principal: SvixPrincipalDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
    key_cache: KeyCacheDep,
    runtime: RuntimeDep,
    response: Response,
) -> ApplicationOut:
    """Change the application's name, uid and metadata; or create it (with `app_id` as its
    uid)."""
    require_admin(principal, "change applications")
    tenant = await _find(session, app_id)
    if tenant is None:
        response.status_code = 201
        tenant = await _create(session, data, secrets, data.uid or app_id)
        return application_out(tenant)
    # A PUT that leaves the uid out keeps it (it may be how the path named the application);
    # its metadata is replaced.
    fields = data.model_dump(include={"name", "uid"}, exclude_none=True)
    update = TenantUpdate.model_validate({**fields, "metadata": data.metadata})
    return application_out(await _update(session, tenant, update, key_cache, runtime))


@router.patch("/{app_id}", response_model=ApplicationOut)
async def patch_app(
    app_id: AppIdPath,
    data: ApplicationPatch,
    principal: SvixPrincipalDep,
    session: WriteSessionDep,
    key_cache: KeyCacheDep,
    runtime: RuntimeDep,
) -> ApplicationOut:
    require_admin(principal, "change applications")
    tenant = await tenants.get_tenant_by_ref(session, ref=app_id)
    fields = data.model_dump(include={"name", "uid", "metadata"}, exclude_unset=True)
    update = TenantUpdate.model_validate(fields)
    return application_out(await _update(session, tenant, update, key_cache, runtime))


@router.delete("/{app_id}", status_code=204, response_class=Response)
async def delete_app(
    app_id: AppIdPath, principal: SvixPrincipalDep, session: WriteSessionDep, key_cache: KeyCacheDep
) -> Response:
    """Delete the application (tenant) with its endpoints, messages and attempts."""
    require_admin(principal, "delete applications")
    tenant = await tenants.get_tenant_by_ref(session, ref=app_id)
    key_cache.forget_on_commit(session, tenant.id)
    await tenants.delete_tenant(session, tenant_id=tenant.id)
    return Response(status_code=204)
