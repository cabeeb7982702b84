from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from webhookd.api.deps import (
    DeliveriesDep,
    PathTenantDep,
    SecretsDep,
    SessionDep,
    SettingsDep,
    WriteSessionDep,
)
from webhookd.api.errors import error_responses
from webhookd.api.route import OrjsonRoute
from webhookd.endpoint import service
from webhookd.endpoint.schemas import EndpointCreate, EndpointRead, EndpointUpdate
from webhookd.endpoint.service import Checked, EndpointSecret
from webhookd.ids import Kind, format_id
from webhookd.models import Ordering
from webhookd.schemas import CursorQuery, Page, PublicIdPath, decode_cursor, next_cursor
from webhookd.tenant.schemas import SecretRotate, SigningSecret

router = APIRouter(
    prefix="/api/v1/tenants/{tenant_id}/endpoints", tags=["endpoints"], route_class=OrjsonRoute
)


# The URL is checked (its host resolved) by these dependencies, which the routes declare
# before their write session: no lock or pooled connection is held while DNS answers.
async def _checked_create(data: EndpointCreate, settings: SettingsDep) -> Checked[EndpointCreate]:
    return await service.check(data, settings)


async def _checked_update(data: EndpointUpdate, settings: SettingsDep) -> Checked[EndpointUpdate]:
    return await service.check(data, settings)


CheckedCreate = Annotated[Checked[EndpointCreate], Depends(_checked_create)]
CheckedUpdate = Annotated[Checked[EndpointUpdate], Depends(_checked_update)]


@router.post("", status_code=201, response_model=EndpointRead, responses=error_responses(409))
async def create_endpoint(
    tenant: PathTenantDep,
    checked: CheckedCreate,
    session: WriteSessionDep,
    settings: SettingsDep,
    secrets: SecretsDep,
) -> EndpointRead:
    """Subscribe a URL to some (or all) of the tenant's event types, with its delivery
    policy (retry schedule, rate limit, custom headers, ordering: docs/DELIVERY.md)."""
    endpoint = await service.create_endpoint(
        session, tenant_id=tenant.id, checked=checked, settings=settings, secrets=secrets
    )
    return EndpointRead.of(endpoint, tenant.ref, service.endpoint_headers(endpoint, secrets))


@router.get("", response_model=Page[EndpointRead])
async def list_endpoints(
    tenant: PathTenantDep,
    session: SessionDep,
    secrets: SecretsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorQuery = None,
) -> Page[EndpointRead]:
    """The tenant's endpoints, oldest first."""
    endpoints = await service.list_endpoints(
        session, tenant_id=tenant.id, limit=limit, after=decode_cursor(cursor)
    )
    return Page(
        items=[
            EndpointRead.of(e, tenant.ref, service.endpoint_headers(e, secrets)) for e in endpoints
        ],
        next_cursor=next_cursor([e.id for e in endpoints], limit),
    )


@router.get("/{endpoint_id}", response_model=EndpointRead)
async def get_endpoint(
    tenant: PathTenantDep, endpoint_id: PublicIdPath, session: SessionDep, secrets: SecretsDep
) -> EndpointRead:
    endpoint = await service.get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
    return EndpointRead.of(endpoint, tenant.ref, service.endpoint_headers(endpoint, secrets))


@router.patch("/{endpoint_id}", response_model=EndpointRead)
async def update_endpoint(
    tenant: PathTenantDep,
    endpoint_id: PublicIdPath,
    checked: CheckedUpdate,
    session: WriteSessionDep,
    secrets: SecretsDep,
    deliveries: DeliveriesDep,
) -> EndpointRead:
    """Change some fields; routing of events published from now on follows the change,
    and so do the policies of deliveries not yet sent."""
    endpoint = await service.update_endpoint(
        session, tenant_id=tenant.id, endpoint_id=endpoint_id, checked=checked, secrets=secrets
    )
    if checked.data.ordering == Ordering.UNORDERED:
        # Deliveries that waited for their FIFO turn go out now (unless disabled).
        await deliveries.release_waiting(session, endpoint.id)
    return EndpointRead.of(endpoint, tenant.ref, service.endpoint_headers(endpoint, secrets))


@router.delete("/{endpoint_id}", status_code=204, response_class=Response)
async def delete_endpoint(
    tenant: PathTenantDep, endpoint_id: PublicIdPath, session: WriteSessionDep
) -> Response:
    """Delete the endpoint, its pending deliveries and its history."""
    await service.delete_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
    return Response(status_code=204)


def _signing_secret(found: EndpointSecret) -> SigningSecret:
    return SigningSecret(
        id=format_id(Kind.ENDPOINT, found.endpoint.public_id),
        secret_key=found.secret_key,
        previous_secret_expires_at=found.previous_expires_at,
    )


@router.get("/{endpoint_id}/secret", response_model=SigningSecret)
async def reveal_secret(
    tenant: PathTenantDep, endpoint_id: PublicIdPath, session: SessionDep, secrets: SecretsDep
) -> SigningSecret:
    """The secret this endpoint's deliveries are signed with: its own once it has one (set
    by `rotate-secret`, or by the Svix API), else its tenant's."""
    found = await service.endpoint_secret(
        session, tenant_id=tenant.id, endpoint_id=endpoint_id, secrets=secrets
    )
    return _signing_secret(found)


@router.post("/{endpoint_id}/rotate-secret", response_model=SigningSecret)
async def rotate_secret(
    tenant: PathTenantDep,
    endpoint_id: PublicIdPath,
    session: WriteSessionDep,
    secrets: SecretsDep,
    body: SecretRotate | None = None,
) -> SigningSecret:
    """A signing secret of the endpoint's own, from now on. The one it signed with until
    now (its tenant's, the first time) keeps signing next to it for `grace_period_seconds`
    (default one day), as a tenant's rotation does; the tenant's other endpoints are not
    affected."""
    grace = dt.timedelta(seconds=(body or SecretRotate()).grace_period_seconds)
    found = await service.rotate_endpoint_secret(
        session, tenant_id=tenant.id, endpoint_id=endpoint_id, grace=grace, secrets=secrets
    )
    return _signing_secret(found)
