"""``/api/v1/app/{app_id}/endpoint``: the application's endpoints, their signing secrets and
custom headers, through the native endpoint service (the URL checked before the write
session opens, as there)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from webhookd.api.deps import (
    DeliveriesDep,
    SecretsDep,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
)
from webhookd.config import Settings
from webhookd.delivery.headers import redact
from webhookd.delivery.signing import generate_secret
from webhookd.endpoint import service as endpoints
from webhookd.endpoint.schemas import EndpointUpdate
from webhookd.endpoint.service import Checked
from webhookd.errors import NotFound
from webhookd.ids import Kind, parse_id
from webhookd.models import Endpoint
from webhookd.schemas import PublicIdPath
from webhookd.svix.auth import AppDep, IdempotencyDep
from webhookd.svix.convert import (
    Position,
    endpoint_create,
    endpoint_fields,
    endpoint_out,
    paged,
    position,
    sensitive_headers,
)
from webhookd.svix.errors import SvixRoute
from webhookd.svix.schemas import (
    EndpointHeadersIn,
    EndpointHeadersOut,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
    EndpointSecretOut,
    EndpointSecretRotateIn,
    EndpointUpsertIn,
    ListResponse,
    Ordering,
)
from webhookd.tenant.keycache import AuthTenant

router = APIRouter(prefix="/api/v1/app/{app_id}/endpoint", tags=["svix"], route_class=SvixRoute)

DEFAULT_GRACE = dt.timedelta(hours=24)
Limit = Annotated[int, Query(ge=1, le=250)]
Iterator = Annotated[str | None, Query(max_length=64)]


async def _checked_in(data: EndpointIn, settings: SettingsDep) -> EndpointIn:
    """The body with its URL checked (DNS answered) before the write session opens."""
    await endpoints.check_url(data.url, settings)
    return data


async def _checked_upsert(data: EndpointUpsertIn, settings: SettingsDep) -> EndpointUpsertIn:
    await endpoints.check_url(data.url, settings)
    return data


async def _checked_patch(data: EndpointPatch, settings: SettingsDep) -> EndpointPatch:
    if data.url is not None:
        await endpoints.check_url(data.url, settings)
    return data


async def _create(
    session: WriteSessionDep,
    app: AuthTenant,
    data: EndpointUpsertIn,
    settings: Settings,
    secrets: SecretsDep,
    **extra: object,
) -> Endpoint:
    """A new endpoint with a signing secret of its own (the one given, or a new one)."""
    secret = getattr(data, "secret", None) or generate_secret()
    return await endpoints.create_endpoint(
        session,
        tenant_id=app.id,
        checked=Checked(endpoint_create(data, **extra)),
        settings=settings,
        secrets=secrets,
        secret_key=secret,
    )


@router.post("", status_code=201, response_model=EndpointOut)
async def create_endpoint(
    app: AppDep,
    data: Annotated[EndpointIn, Depends(_checked_in)],
    session: WriteSessionDep,
    settings: SettingsDep,
    secrets: SecretsDep,
    idem: IdempotencyDep,
) -> Response:
    """A new endpoint; its signing secret is its own (`secret`, or generated)."""
    if (replay := await idem.replay(session)) is not None:
        return replay
    extra = {"headers": data.headers} if data.headers else {}
    endpoint = await _create(session, app, data, settings, secrets, **extra)
    return await idem.remember(session, 201, endpoint_out(endpoint))


@router.get("", response_model=ListResponse[EndpointOut])
async def list_endpoints(
    app: AppDep,
    session: SessionDep,
    limit: Limit = 50,
    iterator: Iterator = None,
    order: Ordering = Ordering.DESCENDING,
) -> ListResponse[EndpointOut]:
    async def fetch(n: int, at: Position) -> list[Endpoint]:
        return await endpoints.list_endpoints(
            session, tenant_id=app.id, limit=n, after=at.after, newest_first=at.newest_first
        )

    return await paged(
        fetch, lambda e: e.id, endpoint_out, limit=limit, at=position(iterator, order)
    )


async def _endpoint(session: SessionDep, app: AuthTenant, endpoint_id: str) -> Endpoint:
    return await endpoints.get_endpoint(session, tenant_id=app.id, endpoint_id=endpoint_id)


@router.get("/{endpoint_id}", response_model=EndpointOut)
async def get_endpoint(app: AppDep, endpoint_id: PublicIdPath, session: SessionDep) -> EndpointOut:
    return endpoint_out(await _endpoint(session, app, endpoint_id))


async def _update(
    session: WriteSessionDep,
    app: AuthTenant,
    endpoint_id: str,
    update: EndpointUpdate,
    secrets: SecretsDep,
    deliveries: DeliveriesDep,
) -> Endpoint:
    endpoint = await endpoints.update_endpoint(
        session, tenant_id=app.id, endpoint_id=endpoint_id, checked=Checked(update), secrets=secrets
    )
    if update.is_active and endpoint.disabled_reason is not None:
        # Svix re-enables with disabled: false; webhookd's enable (breaker reset, what
        # waited sent), as POST …/enable does.
        await deliveries.enable_endpoint(session, endpoint.id)
    return endpoint


@router.put(
    "/{endpoint_id}",
    response_model=EndpointOut,
    responses={201: {"model": EndpointOut, "description": "Created"}},
)
async def upsert_endpoint(
    app: AppDep,
    endpoint_id: PublicIdPath,
    data: Annotated[EndpointUpsertIn, Depends(_checked_upsert)],
    session: WriteSessionDep,
    settings: SettingsDep,
    secrets: SecretsDep,
    deliveries: DeliveriesDep,
    response: Response,
) -> EndpointOut:
    """Replace the endpoint's fields; or create it (with `endpoint_id` as its uid)."""
    found = await endpoints.find_endpoint(session, tenant_id=app.id, endpoint_id=endpoint_id)
    if found is None:
        if parse_id(Kind.ENDPOINT, endpoint_id) is not None:
            raise NotFound(f"endpoint {endpoint_id!r} not found")
        response.status_code = 201
        uid = {"uid": data.uid or endpoint_id}
        return endpoint_out(await _create(session, app, data, settings, secrets, **uid))
    update = EndpointUpdate.model_validate(endpoint_fields(data, whole=True))
    return endpoint_out(await _update(session, app, endpoint_id, update, secrets, deliveries))


@router.patch("/{endpoint_id}", response_model=EndpointOut)
async def patch_endpoint(
    app: AppDep,
    endpoint_id: PublicIdPath,
    data: Annotated[EndpointPatch, Depends(_checked_patch)],
    session: WriteSessionDep,
    secrets: SecretsDep,
    deliveries: DeliveriesDep,
) -> EndpointOut:
    update = EndpointUpdate.model_validate(endpoint_fields(data, whole=False))
    return endpoint_out(await _update(session, app, endpoint_id, update, secrets, deliveries))


@router.delete("/{endpoint_id}", status_code=204, response_class=Response)
async def delete_endpoint(
    app: AppDep, endpoint_id: PublicIdPath, session: WriteSessionDep
) -> Response:
    await endpoints.delete_endpoint(session, tenant_id=app.id, endpoint_id=endpoint_id)
    return Response(status_code=204)


@router.get("/{endpoint_id}/secret", response_model=EndpointSecretOut)
async def get_secret(
    app: AppDep, endpoint_id: PublicIdPath, session: SessionDep, secrets: SecretsDep
) -> EndpointSecretOut:
    """The secret the endpoint's deliveries are signed with."""
    found = await endpoints.endpoint_secret(
        session, tenant_id=app.id, endpoint_id=endpoint_id, secrets=secrets
    )
    return EndpointSecretOut(key=found.secret_key)


@router.post("/{endpoint_id}/secret/rotate", response_model=EndpointSecretOut)
async def rotate_secret(
    app: AppDep,
    endpoint_id: PublicIdPath,
    session: WriteSessionDep,
    secrets: SecretsDep,
    idem: IdempotencyDep,
    data: EndpointSecretRotateIn | None = None,
) -> Response:
    """A new signing secret (`key`, or generated), in the answer; the previous one keeps
    signing next to it for `gracePeriodSeconds` (default 24 h)."""
    if (replay := await idem.replay(session)) is not None:
        return replay
    data = data or EndpointSecretRotateIn()
    grace = (
        DEFAULT_GRACE
        if data.grace_period_seconds is None
        else dt.timedelta(seconds=data.grace_period_seconds)
    )
    rotated = await endpoints.rotate_endpoint_secret(
        session,
        tenant_id=app.id,
        endpoint_id=endpoint_id,
        grace=grace,
        secrets=secrets,
        secret_key=data.key,
    )
    return await idem.remember(session, 200, EndpointSecretOut(key=rotated.secret_key))


def _headers_out(endpoint: Endpoint, secrets: SecretsDep) -> EndpointHeadersOut:
    headers = endpoints.endpoint_headers(endpoint, secrets) or {}
    return EndpointHeadersOut(headers=redact(headers) or {}, sensitive=sensitive_headers(headers))


@router.get("/{endpoint_id}/headers", response_model=EndpointHeadersOut)
async def get_headers(
    app: AppDep, endpoint_id: PublicIdPath, session: SessionDep, secrets: SecretsDep
) -> EndpointHeadersOut:
    """The custom headers; secret-looking values redacted, their names in `sensitive`."""
    return _headers_out(await _endpoint(session, app, endpoint_id), secrets)


async def _set_headers(
    session: WriteSessionDep,
    app: AuthTenant,
    endpoint_id: str,
    headers: dict[str, str],
    secrets: SecretsDep,
) -> None:
    update = EndpointUpdate.model_validate({"headers": headers or None})
    await endpoints.update_endpoint(
        session, tenant_id=app.id, endpoint_id=endpoint_id, checked=Checked(update), secrets=secrets
    )


@router.put("/{endpoint_id}/headers", status_code=204, response_class=Response)
async def set_headers(
    app: AppDep,
    endpoint_id: PublicIdPath,
    data: EndpointHeadersIn,
    session: WriteSessionDep,
    secrets: SecretsDep,
) -> Response:
    """Replace the custom headers."""
    await _set_headers(session, app, endpoint_id, data.headers, secrets)
    return Response(status_code=204)


@router.patch("/{endpoint_id}/headers", status_code=204, response_class=Response)
async def patch_headers(
    app: AppDep,
    endpoint_id: PublicIdPath,
    data: EndpointHeadersPatchIn,
    session: WriteSessionDep,
    secrets: SecretsDep,
) -> Response:
    """Add or change the headers given (a null value removes one), remove `deleteHeaders`."""
    endpoint = await _endpoint(session, app, endpoint_id)
    headers = endpoints.endpoint_headers(endpoint, secrets) or {}
    removed = {name.lower() for name in data.delete_headers or ()}
    removed |= {name.lower() for name, value in data.headers.items() if value is None}
    kept = {k: v for k, v in headers.items() if k.lower() not in removed}
    changed = {k.lower() for k in data.headers}
    kept = {k: v for k, v in kept.items() if k.lower() not in changed}
    kept.update({k: v for k, v in data.headers.items() if v is not None})
    await _set_headers(session, app, endpoint_id, kept, secrets)
    return Response(status_code=204)
