"""The tenant portal (``/portal``): a tenant's customer manages their endpoints, reads and
rotates the signing secrets (the tenant's, an endpoint's), sends test events, browses
deliveries and retries failures.

A session starts from a one-time link (``POST /api/v1/portal-sessions``) and sees one
tenant only, or only some of its endpoints (their deliveries included): any other id is a
404 page, exactly like one that does not exist. Pages call the same services as the API.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.api.deps import (
    DeliveriesDep,
    RuntimeDep,
    SecretsDep,
    SessionDep,
    WriteSessionDep,
)
from webhookd.db import utcnow
from webhookd.delivery.headers import redact
from webhookd.delivery.schemas import DeliveryDetail, DeliveryRead
from webhookd.endpoint import service as endpoints
from webhookd.endpoint.schemas import EndpointCreate, EndpointRead, EndpointUpdate
from webhookd.errors import AppError, NotFound
from webhookd.eventtype.service import list_event_types
from webhookd.ids import Kind, format_id
from webhookd.models import DeliveryStatus, Endpoint, Tenant
from webhookd.portal.service import exchange
from webhookd.tenant import service as tenants
from webhookd.ui.endpoint_form import (
    PORTAL_FIELDS,
    app_errors,
    filter_text,
    form_texts,
    headers_text,
)
from webhookd.ui.endpoint_form import checked as checked_form
from webhookd.ui.portal_session import (
    Portal,
    PortalDep,
    PortalFormDep,
    portal_sessions,
    set_portal_cookie,
)
from webhookd.ui.templating import render

router = APIRouter(prefix="/portal", include_in_schema=False)

DELIVERIES_SHOWN = 25
SECRET_GRACE = dt.timedelta(days=1)  # a rotated secret keeps signing beside the new one


async def _page(
    request: Request, session: AsyncSession, portal: Portal, template: str, **context: Any
) -> Response:
    """A portal page with the tenant's brand and its frame-ancestors allow-list."""
    tenant = await tenants.get_tenant(session, tenant_id=portal.tenant_id)
    return render(
        request,
        template,
        frame_ancestors=tenant.portal_frame_ancestors or [],
        logo=tenant.portal_logo_url,
        tenant_name=tenant.name,
        scoped=portal.grant.endpoint_ids is not None,
        **context,
    )


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# -- the link ------------------------------------------------------------------------------


@router.get("/start")
async def start(
    request: Request,
    session: WriteSessionDep,
    token: Annotated[str, Query(min_length=1, max_length=200)],
) -> Response:
    """Exchange the one-time link for a portal session (a cookie), then show the portal."""
    grant = await exchange(session, token=token)
    response = _see_other("/portal")
    set_portal_cookie(response, request, portal_sessions(request.app).issue(grant), grant)
    return response


@router.get("/ended")
async def ended(request: Request) -> Response:
    """Where an htmx request of a session that has ended sends the browser (``HX-Redirect``):
    it needs no session, and holds nothing but this text, so any site may frame it (the
    tenant's app that framed the portal shows it in place)."""
    return render(
        request,
        "portal_refused.html",
        frame_ancestors=["*"],
        heading="Your session has ended",
        message="the portal session has expired, or the tenant's API key changed",
    )


@router.get("/brand.css")
async def brand(portal: PortalDep, session: SessionDep) -> Response:
    """The tenant's colour as Pico's primary colour (a stylesheet: no inline style)."""
    tenant = await tenants.get_tenant(session, tenant_id=portal.tenant_id)
    css = ""
    if tenant.portal_brand_color:
        color = tenant.portal_brand_color
        css = (
            f":root {{ --pico-primary: {color}; --pico-primary-background: {color}; "
            f"--pico-primary-border: {color}; --pico-primary-hover-background: {color}; }}\n"
        )
    return Response(css, media_type="text/css", headers={"Cache-Control": "no-store"})


# -- endpoints -----------------------------------------------------------------------------


def _visible(portal: Portal, endpoint: Endpoint) -> bool:
    return bool(portal.sees(format_id(Kind.ENDPOINT, endpoint.public_id)))


async def _endpoint(session: AsyncSession, portal: Portal, endpoint_id: str) -> Endpoint:
    endpoint = await endpoints.get_endpoint(
        session, tenant_id=portal.tenant_id, endpoint_id=endpoint_id
    )
    if not _visible(portal, endpoint):
        raise NotFound(f"endpoint {endpoint_id!r} not found")
    return endpoint


def _read(endpoint: Endpoint, tenant: Tenant, secrets: Any) -> EndpointRead:
    ref = format_id(Kind.TENANT, tenant.public_id)
    return EndpointRead.of(endpoint, ref, endpoints.endpoint_headers(endpoint, secrets))


@router.get("")
async def home(
    request: Request, portal: PortalDep, session: SessionDep, secrets: SecretsDep
) -> Response:
    return await _home(request, portal, session, secrets, values={}, errors={})


async def _home(
    request: Request,
    portal: Portal,
    session: AsyncSession,
    secrets: Any,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    tenant = await tenants.get_tenant(session, tenant_id=portal.tenant_id)
    rows = await endpoints.list_endpoints(
        session, tenant_id=portal.tenant_id, limit=100, after=None
    )
    types = await list_event_types(
        session, tenant_id=portal.tenant_id, include_archived=False, limit=200, after=None
    )
    return await _page(
        request,
        session,
        portal,
        "portal_home.html",
        csrf=portal.csrf,
        status_code=status_code,
        endpoints=[_read(e, tenant, secrets) for e in rows if _visible(portal, e)],
        event_types=types,
        values=values,
        errors=errors,
    )


@router.post("/endpoints")
async def create_endpoint(
    request: Request,
    form: PortalFormDep,
    portal: PortalDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    secrets: SecretsDep,
) -> Response:
    if portal.grant.endpoint_ids is not None:
        raise AppError("this portal link was given for some endpoints only", status_code=403)
    texts = form_texts(form, PORTAL_FIELDS)
    checked, errors = await checked_form(EndpointCreate, texts, runtime.settings)
    status_code = 422
    if checked is not None:
        try:
            endpoint = await endpoints.create_endpoint(
                session,
                tenant_id=portal.tenant_id,
                checked=checked,
                settings=runtime.settings,
                secrets=secrets,
            )
            return _see_other(f"/portal/endpoints/{format_id(Kind.ENDPOINT, endpoint.public_id)}")
        except AppError as exc:
            await session.rollback()
            errors, status_code = {"url": exc.message}, exc.status_code
    return await _home(
        request, portal, session, secrets, values=texts, errors=errors, status_code=status_code
    )


@router.get("/endpoints/{endpoint_id}")
async def endpoint_page(
    request: Request,
    endpoint_id: str,
    portal: PortalDep,
    session: SessionDep,
    secrets: SecretsDep,
    deliveries: DeliveriesDep,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    sent: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return await _endpoint_page(
        request, portal, session, secrets, deliveries, endpoint_id, status=status, sent=sent
    )


async def _endpoint_page(
    request: Request,
    portal: Portal,
    session: AsyncSession,
    secrets: Any,
    deliveries: Any,
    endpoint_id: str,
    *,
    status: DeliveryStatus | None = None,
    sent: str | None = None,
    errors: dict[str, str] | None = None,
    saved: bool = False,
    secret: endpoints.EndpointSecret | None = None,
    rotated: bool = False,
    status_code: int = 200,
) -> Response:
    endpoint = await _endpoint(session, portal, endpoint_id)
    tenant = await tenants.get_tenant(session, tenant_id=portal.tenant_id)
    rows = await deliveries.list_deliveries(
        session,
        tenant_id=portal.tenant_id,
        endpoint_id=endpoint.id,
        statuses=[status] if status else [],
        since=None,
        limit=DELIVERIES_SHOWN,
        before=None,
    )
    read = _read(endpoint, tenant, secrets)
    return await _page(
        request,
        session,
        portal,
        "portal_endpoint.html",
        csrf=portal.csrf,
        status_code=status_code,
        endpoint=read,
        headers_text=headers_text(read.headers),
        filter_text=filter_text(read.filter),
        deliveries=[DeliveryRead.of(r) for r in rows],
        status=status,
        sent=sent,
        errors=errors or {},
        saved=saved,
        own_secret=endpoint.secret_encrypted is not None,
        secret=secret,
        rotated=rotated,
    )


@router.post("/endpoints/{endpoint_id}")
async def update_endpoint(
    request: Request,
    endpoint_id: str,
    form: PortalFormDep,
    portal: PortalDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    secrets: SecretsDep,
    deliveries: DeliveriesDep,
) -> Response:
    endpoint = await _endpoint(session, portal, endpoint_id)
    shown = headers_text(redact(endpoints.endpoint_headers(endpoint, secrets)))
    texts = form_texts(form, PORTAL_FIELDS)
    checked, errors = await checked_form(
        EndpointUpdate, texts, runtime.settings, stored_headers=shown
    )
    if checked is not None:
        try:
            await endpoints.update_endpoint(
                session,
                tenant_id=portal.tenant_id,
                endpoint_id=endpoint_id,
                checked=checked,
                secrets=secrets,
            )
        except AppError as exc:
            if exc.status_code != 422:
                raise
            errors = app_errors(exc)
    if errors:
        await session.rollback()
        return await _endpoint_page(
            request,
            portal,
            session,
            secrets,
            deliveries,
            endpoint_id,
            errors=errors,
            status_code=422,
        )
    return await _endpoint_page(
        request, portal, session, secrets, deliveries, endpoint_id, saved=True
    )


@router.post("/endpoints/{endpoint_id}/test")
async def send_test(
    endpoint_id: str,
    _: PortalFormDep,
    portal: PortalDep,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
) -> Response:
    endpoint = await _endpoint(session, portal, endpoint_id)
    if not endpoint.is_active or endpoint.disabled_reason is not None:
        raise AppError("this endpoint is disabled", status_code=409, code="endpoint_disabled")
    delivery = await deliveries.send_test(
        session,
        tenant_id=portal.tenant_id,
        endpoint_id=endpoint.id,
        payload={"message": "A test event from webhookd", "endpoint_id": endpoint_id},
        now=utcnow(),
    )
    sent = format_id(Kind.DELIVERY, delivery)
    return _see_other(f"/portal/endpoints/{endpoint_id}?sent={sent}")


# -- deliveries ----------------------------------------------------------------------------


async def _delivery(
    session: AsyncSession, portal: Portal, deliveries: Any, delivery_id: str
) -> tuple[Any, list[Any]]:
    row, attempts = await deliveries.get_delivery(
        session, tenant_id=portal.tenant_id, delivery_id=delivery_id
    )
    if not portal.sees(format_id(Kind.ENDPOINT, row[3])):
        raise NotFound(f"delivery {delivery_id!r} not found")
    return row, attempts


@router.get("/deliveries/{delivery_id}")
async def delivery_page(
    request: Request,
    delivery_id: str,
    portal: PortalDep,
    session: SessionDep,
    deliveries: DeliveriesDep,
    retried: bool = False,
) -> Response:
    row, attempts = await _delivery(session, portal, deliveries, delivery_id)
    return await _page(
        request,
        session,
        portal,
        "portal_delivery.html",
        csrf=portal.csrf,
        delivery=DeliveryDetail.with_attempts(row, attempts),
        retried=retried,
    )


@router.post("/deliveries/{delivery_id}/retry")
async def retry_delivery(
    delivery_id: str,
    _: PortalFormDep,
    portal: PortalDep,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
) -> Response:
    row, _attempts = await _delivery(session, portal, deliveries, delivery_id)
    if not await deliveries.retry_delivery(session, delivery_pk=row[0].id):
        raise AppError("only a failed delivery (dead) can be retried", status_code=409)
    return _see_other(f"/portal/deliveries/{delivery_id}?retried=true")


# -- the signing secret ----------------------------------------------------------------------


def _whole_tenant(portal: Portal) -> None:
    if portal.grant.endpoint_ids is not None:
        raise AppError(
            "the signing secret is the tenant's: this portal link was given for some "
            "endpoints only",
            status_code=403,
        )


@router.get("/secret")
async def secret_page(request: Request, portal: PortalDep, session: SessionDep) -> Response:
    _whole_tenant(portal)
    return await _page(
        request, session, portal, "portal_secret.html", csrf=portal.csrf, secret=None
    )


@router.post("/secret")
async def reveal_secret(
    request: Request, _: PortalFormDep, portal: PortalDep, session: SessionDep, secrets: SecretsDep
) -> Response:
    _whole_tenant(portal)
    tenant = await tenants.get_tenant(session, tenant_id=portal.tenant_id)
    return await _page(
        request,
        session,
        portal,
        "portal_secret.html",
        csrf=portal.csrf,
        secret=tenants.reveal_secret(tenant, secrets=secrets),
    )


@router.post("/secret/rotate")
async def rotate_secret(
    request: Request,
    _: PortalFormDep,
    portal: PortalDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
) -> Response:
    _whole_tenant(portal)
    _row, secret = await tenants.rotate_secret(
        session, tenant_id=portal.tenant_id, grace=SECRET_GRACE, secrets=secrets
    )
    return await _page(
        request,
        session,
        portal,
        "portal_secret.html",
        csrf=portal.csrf,
        secret=secret,
        rotated=True,
    )


def _may_show(portal: Portal, endpoint: Endpoint) -> None:
    """A link given for some endpoints never shows the tenant's secret (its other endpoints
    sign with it too): only an endpoint's own."""
    if portal.grant.endpoint_ids is not None and endpoint.secret_encrypted is None:
        raise AppError(
            "this endpoint signs with the tenant's secret, which a portal link given for some "
            "endpoints only cannot show: rotate it to give the endpoint a secret of its own",
            status_code=403,
        )


@router.post("/endpoints/{endpoint_id}/secret")
async def reveal_endpoint_secret(
    request: Request,
    endpoint_id: str,
    _: PortalFormDep,
    portal: PortalDep,
    session: SessionDep,
    secrets: SecretsDep,
    deliveries: DeliveriesDep,
) -> Response:
    """The secret this endpoint's deliveries are signed with: its own, else its tenant's."""
    _may_show(portal, await _endpoint(session, portal, endpoint_id))
    found = await endpoints.endpoint_secret(
        session, tenant_id=portal.tenant_id, endpoint_id=endpoint_id, secrets=secrets
    )
    return await _endpoint_page(
        request, portal, session, secrets, deliveries, endpoint_id, secret=found
    )


@router.post("/endpoints/{endpoint_id}/secret/rotate")
async def rotate_endpoint_secret(
    request: Request,
    endpoint_id: str,
    _: PortalFormDep,
    portal: PortalDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
    deliveries: DeliveriesDep,
) -> Response:
    """A secret of the endpoint's own; the one it signed with keeps signing for a day."""
    await _endpoint(session, portal, endpoint_id)
    found = await endpoints.rotate_endpoint_secret(
        session,
        tenant_id=portal.tenant_id,
        endpoint_id=endpoint_id,
        grace=SECRET_GRACE,
        secrets=secrets,
    )
    return await _endpoint_page(
        request, portal, session, secrets, deliveries, endpoint_id, secret=found, rotated=True
    )
