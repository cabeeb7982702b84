"""The operator console's endpoint pages: a tenant's endpoints, one endpoint's health, its
recent deliveries and its delivery policy, and the actions on it (pause, enable, send a test
event, delete). Like the other pages they call the API's services, never SQL, and every
change is a POSTed form checked for its CSRF token.

An endpoint's URL is checked (its host resolved, for the SSRF guard) before the write
transaction opens, as the API does: these handlers open their sessions themselves
(``runtime.db``) instead of declaring a write session that would be open during the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.api.deps import RuntimeDep, SessionDep, tenant_named
from webhookd.db import utcnow
from webhookd.delivery.headers import redact
from webhookd.delivery.schemas import DeliveryRead
from webhookd.endpoint import service as endpoints
from webhookd.endpoint.schemas import EndpointCreate, EndpointRead, EndpointUpdate
from webhookd.errors import AppError, NotFound
from webhookd.ids import Kind, format_id
from webhookd.models import Circuit, DeliveryStatus, Endpoint, Ordering
from webhookd.runtime import Runtime
from webhookd.tenant import service as tenants
from webhookd.tenant.keycache import AuthTenant
from webhookd.tenant.schemas import TenantRead
from webhookd.ui.endpoint_form import (
    CREATE_FIELDS,
    POLICY_FIELDS,
    app_errors,
    form_texts,
    headers_text,
    policy_texts,
)
from webhookd.ui.endpoint_form import checked as checked_form
from webhookd.ui.pages import see_other
from webhookd.ui.session import ConsoleDep, FormDep
from webhookd.ui.templating import render

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50
HEALTH_WINDOW = 100  # the recent deliveries the success rate and last error come from
RECENT = 20  # the deliveries listed on an endpoint's page
NOTICES = {
    "created": "Endpoint created.",
    "saved": "Saved.",
    "paused": "Paused: events published from now on are not routed to it until it is enabled.",
    "enabled": "Enabled: events are routed to it again, and deliveries that waited go out now.",
    "deleted": "Endpoint deleted, with its deliveries and their history.",
}


def _base(tenant: AuthTenant) -> str:
    return f"/ui/tenants/{tenant.ref}/endpoints"


def _ref(endpoint: Endpoint) -> str:
    return format_id(Kind.ENDPOINT, endpoint.public_id)


# -- reads ---------------------------------------------------------------------------------


def state_of(endpoint: EndpointRead) -> str:
    if endpoint.disabled_reason is not None:
        return "disabled"
    return "active" if endpoint.is_active else "paused"


@dataclass(frozen=True)
class HealthFigures:
    """What the endpoint's recent deliveries say of it."""

    window: int  # deliveries looked at (at most HEALTH_WINDOW)
    succeeded: int
    failed: int  # dead or retrying
    last_error: DeliveryRead | None  # the newest delivery with an error

    @property
    def counted(self) -> int:
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.counted if self.counted else None


def health_of(recent: list[DeliveryRead]) -> HealthFigures:
    succeeded = sum(1 for d in recent if d.status == DeliveryStatus.SUCCEEDED)
    failed = sum(1 for d in recent if d.status in (DeliveryStatus.DEAD, DeliveryStatus.RETRYING))
    last_error = next((d for d in recent if d.last_error), None)
    return HealthFigures(len(recent), succeeded, failed, last_error)


async def _tenant_read(session: AsyncSession, tenant: AuthTenant) -> TenantRead:
    return TenantRead.of(await tenants.get_tenant(session, tenant_id=tenant.id))


async def _list_page(
    request: Request,
    csrf: str,
    session: AsyncSession,
    tenant: AuthTenant,
    *,
    after: int | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    rows = await endpoints.list_endpoints(
        session, tenant_id=tenant.id, limit=PAGE_SIZE, after=after
    )
    items = [EndpointRead.of(row, tenant.ref) for row in rows]
    return render(
        request,
        "endpoints.html",
        csrf=csrf,
        status_code=status_code,
        tenant=await _tenant_read(session, tenant),
        endpoints=[(item, state_of(item)) for item in items],
        after=rows[-1].id if len(rows) == PAGE_SIZE else None,
        values=values or {},
        errors=errors or {},
        notice=NOTICES.get(notice or ""),
    )


async def _endpoint_page(
    request: Request,
    csrf: str,
    session: AsyncSession,
    runtime: Runtime,
    tenant: AuthTenant,
    endpoint_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    alert: str | None = None,
    sent: str | None = None,
    status_code: int = 200,
) -> Response:
    row = await endpoints.get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
    rows = await runtime.deliveries.list_deliveries(
        session,
        tenant_id=tenant.id,
        endpoint_id=row.id,
        statuses=[],
        since=None,
        limit=HEALTH_WINDOW,
        before=None,
    )
    # Read the endpoint's health again: on PostgreSQL each statement sees what committed
    # before it, so a failure recorded between the two reads would show in the list with
    # its endpoint's failure count still the one before it.
    await session.refresh(row)
    endpoint = EndpointRead.of(row, tenant.ref, endpoints.endpoint_headers(row, runtime.secrets))
    recent = [DeliveryRead.of(r) for r in rows]
    test_delivery = None
    if sent:
        try:
            found, _ = await runtime.deliveries.get_delivery(
                session, tenant_id=tenant.id, delivery_id=sent
            )
        except NotFound:
            found = None
        if found is not None and found[0].endpoint_id == row.id:
            test_delivery = DeliveryRead.of(found)
    return render(
        request,
        "endpoint.html",
        csrf=csrf,
        status_code=status_code,
        tenant=await _tenant_read(session, tenant),
        endpoint=endpoint,
        state=state_of(endpoint),
        consecutive_failures=row.consecutive_failures,
        circuit_until=row.circuit_until if row.circuit != Circuit.CLOSED else None,
        health=health_of(recent),
        window=HEALTH_WINDOW,
        deliveries=recent[:RECENT],
        recent=RECENT,
        test_delivery=test_delivery,
        values=values if values is not None else policy_texts(endpoint),
        errors=errors or {},
        notice=NOTICES.get(notice or ""),
        alert=alert,
    )


# -- the tenant's endpoints ----------------------------------------------------------------


@router.get("/tenants/{tenant_id}/endpoints")
async def endpoints_page(
    request: Request,
    tenant_id: str,
    console: ConsoleDep,
    session: SessionDep,
    runtime: RuntimeDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    tenant = await tenant_named(runtime, tenant_id)
    return await _list_page(request, console.csrf, session, tenant, after=after, notice=notice)


@router.post("/tenants/{tenant_id}/endpoints")
async def create_endpoint(
    request: Request, tenant_id: str, form: FormDep, console: ConsoleDep, runtime: RuntimeDep
) -> Response:
    tenant = await tenant_named(runtime, tenant_id)
    texts = form_texts(form, CREATE_FIELDS)
    checked, errors = await checked_form(EndpointCreate, texts, runtime.settings)
    if checked is not None:  # checked before the transaction
        try:
            async with runtime.db.write() as session:
                row = await endpoints.create_endpoint(
                    session,
                    tenant_id=tenant.id,
                    checked=checked,
                    settings=runtime.settings,
                    secrets=runtime.secrets,
                )
                ref = _ref(row)
            return see_other(f"{_base(tenant)}/{ref}?notice=created")
        except AppError as exc:
            if exc.status_code not in (409, 422):
                raise
            errors = app_errors(exc)
    async with runtime.db.read() as session:
        return await _list_page(
            request, console.csrf, session, tenant, values=texts, errors=errors, status_code=422
        )


# -- one endpoint --------------------------------------------------------------------------


@router.get("/tenants/{tenant_id}/endpoints/{endpoint_id}")
async def endpoint_page(
    request: Request,
    tenant_id: str,
    endpoint_id: str,
    console: ConsoleDep,
    session: SessionDep,
    runtime: RuntimeDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
    sent: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    tenant = await tenant_named(runtime, tenant_id)
    return await _endpoint_page(
        request, console.csrf, session, runtime, tenant, endpoint_id, notice=notice, sent=sent
    )


@router.post("/tenants/{tenant_id}/endpoints/{endpoint_id}")
async def update_endpoint(
    request: Request,
    tenant_id: str,
    endpoint_id: str,
    form: FormDep,
    console: ConsoleDep,
    runtime: RuntimeDep,
) -> Response:
    """Save the policy form: every field is sent (empty: null where the API allows it),
    but headers shown redacted and sent back as shown are left as stored."""
    tenant = await tenant_named(runtime, tenant_id)
    async with runtime.db.read() as session:
        row = await endpoints.get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
        stored_headers = headers_text(redact(endpoints.endpoint_headers(row, runtime.secrets)))
    texts = form_texts(form, POLICY_FIELDS)
    checked, errors = await checked_form(
        EndpointUpdate, texts, runtime.settings, stored_headers=stored_headers
    )
    if checked is not None:  # checked before the transaction
        try:
            async with runtime.db.write() as session:
                row = await endpoints.update_endpoint(
                    session,
                    tenant_id=tenant.id,
                    endpoint_id=endpoint_id,
                    checked=checked,
                    secrets=runtime.secrets,
                )
                if checked.data.ordering == Ordering.UNORDERED:
                    # Deliveries that waited for their FIFO turn go out now (as the API does).
                    await runtime.deliveries.release_waiting(session, row.id)
            return see_other(f"{_base(tenant)}/{endpoint_id}?notice=saved")
        except AppError as exc:
            if exc.status_code != 422:
                raise
            errors = app_errors(exc)
    async with runtime.db.read() as session:
        return await _endpoint_page(
            request,
            console.csrf,
            session,
            runtime,
            tenant,
            endpoint_id,
            values=texts,
            errors=errors,
            status_code=422,
        )


@router.post("/tenants/{tenant_id}/endpoints/{endpoint_id}/pause")
async def pause_endpoint(
    tenant_id: str, endpoint_id: str, _: FormDep, runtime: RuntimeDep
) -> Response:
    """``is_active: false``: events published from now on are not routed to it (they are
    not kept for later); deliveries already queued still go out."""
    tenant = await tenant_named(runtime, tenant_id)
    checked = await endpoints.check(EndpointUpdate(is_active=False), runtime.settings)
    async with runtime.db.write() as session:
        await endpoints.update_endpoint(
            session,
            tenant_id=tenant.id,
            endpoint_id=endpoint_id,
            checked=checked,
            secrets=runtime.secrets,
        )
    return see_other(f"{_base(tenant)}/{endpoint_id}?notice=paused")


@router.post("/tenants/{tenant_id}/endpoints/{endpoint_id}/enable")
async def enable_endpoint(
    tenant_id: str, endpoint_id: str, _: FormDep, runtime: RuntimeDep
) -> Response:
    """What ``POST …/enable`` of the API does: clears the disabled reason, resets the
    breaker, sets it active, and sends what waited for it."""
    tenant = await tenant_named(runtime, tenant_id)
    async with runtime.db.write() as session:
        row = await endpoints.get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
        await runtime.deliveries.enable_endpoint(session, row.id)
    return see_other(f"{_base(tenant)}/{endpoint_id}?notice=enabled")


@router.post("/tenants/{tenant_id}/endpoints/{endpoint_id}/test")
async def send_test(
    request: Request,
    tenant_id: str,
    endpoint_id: str,
    _: FormDep,
    console: ConsoleDep,
    runtime: RuntimeDep,
) -> Response:
    """Send a ``webhookd.test`` event to this endpoint alone; the page it leads to shows
    the test delivery's status (reload to follow it)."""
    tenant = await tenant_named(runtime, tenant_id)
    async with runtime.db.write() as session:
        row = await endpoints.get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
        if row.is_active and row.disabled_reason is None:
            payload = {
                "message": "A test event from the webhookd console",
                "endpoint_id": _ref(row),
            }
            delivery_id = await runtime.deliveries.send_test(
                session, tenant_id=tenant.id, endpoint_id=row.id, payload=payload, now=utcnow()
            )
            sent: str | None = format_id(Kind.DELIVERY, delivery_id)
        else:
            sent = None
    if sent is not None:
        return see_other(f"{_base(tenant)}/{endpoint_id}?sent={sent}")
    async with runtime.db.read() as session:
        return await _endpoint_page(
            request,
            console.csrf,
            session,
            runtime,
            tenant,
            endpoint_id,
            alert="This endpoint is paused or disabled: enable it before sending a test event.",
            status_code=409,
        )


@router.get("/tenants/{tenant_id}/endpoints/{endpoint_id}/delete")
async def delete_page(
    request: Request,
    tenant_id: str,
    endpoint_id: str,
    console: ConsoleDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    tenant = await tenant_named(runtime, tenant_id)
    return await _delete_page(request, console.csrf, session, tenant, endpoint_id)


async def _delete_page(
    request: Request,
    csrf: str,
    session: AsyncSession,
    tenant: AuthTenant,
    endpoint_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    row = await endpoints.get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
    return render(
        request,
        "endpoint_delete.html",
        csrf=csrf,
        status_code=status_code,
        tenant=await _tenant_read(session, tenant),
        endpoint=EndpointRead.of(row, tenant.ref),
        error=error,
    )


@router.post("/tenants/{tenant_id}/endpoints/{endpoint_id}/delete")
async def delete_endpoint(
    request: Request,
    tenant_id: str,
    endpoint_id: str,
    form: FormDep,
    console: ConsoleDep,
    runtime: RuntimeDep,
) -> Response:
    """Delete the endpoint with its pending deliveries and history, once the operator
    ticked the confirmation box."""
    tenant = await tenant_named(runtime, tenant_id)
    if form.get("confirm") != "yes":
        async with runtime.db.read() as session:
            return await _delete_page(
                request,
                console.csrf,
                session,
                tenant,
                endpoint_id,
                error="Tick the box to confirm the deletion.",
                status_code=422,
            )
    async with runtime.db.write() as session:
        await endpoints.delete_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
    return see_other(f"{_base(tenant)}?notice=deleted")
