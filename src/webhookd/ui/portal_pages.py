"""The tenant portal (``/portal``): a tenant's customer manages their endpoints, reads and
rotates the signing secret, sends test events, browses deliveries and retries failures.

A session starts from a one-time link (``POST /api/v1/portal-sessions``) and sees one
tenant only, or only some of its endpoints (their deliveries included): any other id is a
404 page, exactly like one that does not exist. Pages call the same services as the API.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from webhookd.api.deps import (
    DeliveriesDep,
    RuntimeDep,
    SecretsDep,
    SessionDep,
    WriteSessionDep,
)
from webhookd.db import utcnow
from webhookd.delivery.schemas import DeliveryDetail, DeliveryRead
from webhookd.endpoint import service as endpoints
from webhookd.endpoint.schemas import EndpointCreate, EndpointRead, EndpointUpdate
from webhookd.errors import AppError, NotFound
from webhookd.eventtype.service import list_event_types
from webhookd.ids import Kind, format_id
from webhookd.models import DeliveryStatus, Endpoint, Tenant
from webhookd.portal.service import exchange
from webhookd.tenant import service as tenants
from webhookd.ui.pages import form_errors
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


def _lines(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
    return headers


def headers_text(headers: dict[str, str] | None) -> str:
    return "\n".join(f"{name}: {value}" for name, value in (headers or {}).items())


class FormProblem(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def endpoint_fields(form: FormData, *, shown_headers: str | None = None) -> dict[str, Any]:
    """The endpoint fields of a portal form, as the API's body would carry them (an empty
    field: null; headers left as shown, redacted: unchanged)."""
    text = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    values: dict[str, Any] = {
        "url": text.get("url", ""),
        "event_types": [t for t in text.get("event_types", "").replace(",", " ").split() if t],
        "description": text.get("description") or None,
        "rate_limit": text.get("rate_limit") or None,
    }
    raw_filter = text.get("filter", "")
    try:
        values["filter"] = json.loads(raw_filter) if raw_filter else None
    except ValueError as exc:
        raise FormProblem("filter", f"not JSON: {exc}") from None
    raw_headers = form.get("headers")
    if isinstance(raw_headers, str) and raw_headers.strip() != (shown_headers or "").strip():
        values["headers"] = _lines(raw_headers) or None
    return values


async def _checked(
    model: type[EndpointCreate] | type[EndpointUpdate], values: dict[str, Any], runtime: Any
) -> Any:
    try:
        data = model.model_validate(values)
    except ValidationError as exc:
        errors = form_errors(exc)
        field = next(iter(errors))
        raise FormProblem(field.split(".")[0], errors[field]) from None
    try:
        return await endpoints.check(data, runtime.settings)
    except AppError as exc:
        field = (exc.fields or [{}])[0].get("field", "url")
        raise FormProblem(field, (exc.fields or [{}])[0].get("message", exc.message)) from None


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
    values: dict[str, Any] = dict(form_items(form))
    try:
        checked = await _checked(EndpointCreate, endpoint_fields(form), runtime)
        endpoint = await endpoints.create_endpoint(
            session,
            tenant_id=portal.tenant_id,
            checked=checked,
            settings=runtime.settings,
            secrets=secrets,
        )
    except FormProblem as problem:
        await session.rollback()
        errors = {problem.field: problem.message}
        return await _home(
            request, portal, session, secrets, values=values, errors=errors, status_code=422
        )
    except AppError as exc:
        await session.rollback()
        return await _home(
            request,
            portal,
            session,
            secrets,
            values=values,
            errors={"url": exc.message},
            status_code=exc.status_code,
        )
    return _see_other(f"/portal/endpoints/{format_id(Kind.ENDPOINT, endpoint.public_id)}")


def form_items(form: FormData) -> list[tuple[str, str]]:
    return [(k, v) for k, v in form.items() if isinstance(v, str) and k != "csrf"]


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
        filter_text=json.dumps(read.filter, indent=2) if read.filter else "",
        deliveries=[DeliveryRead.of(r) for r in rows],
        status=status,
        sent=sent,
        errors=errors or {},
        saved=saved,
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
    shown = headers_text(endpoints.endpoint_headers(endpoint, secrets))
    try:
        checked = await _checked(
            EndpointUpdate, endpoint_fields(form, shown_headers=shown), runtime
        )
        await endpoints.update_endpoint(
            session,
            tenant_id=portal.tenant_id,
            endpoint_id=endpoint_id,
            checked=checked,
            secrets=secrets,
        )
    except FormProblem as problem:
        await session.rollback()
        return await _endpoint_page(
            request,
            portal,
            session,
            secrets,
            deliveries,
            endpoint_id,
            errors={problem.field: problem.message},
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
        session, tenant_id=portal.tenant_id, grace=dt.timedelta(days=1), secrets=secrets
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
