"""The operator console's endpoint pages: a tenant's endpoints, one endpoint's health, its
recent deliveries and its delivery policy, and the actions on it (pause, enable, send a test
event, delete). Like the other pages they call the API's services, never SQL, and every
change is a POSTed form checked for its CSRF token.

An endpoint's URL is checked (its host resolved, for the SSRF guard) before the write
transaction opens, as the API does: these handlers open their sessions themselves
(``runtime.db``) instead of declaring a write session that would be open during the check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

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
CREATE_FIELDS = ("url", "event_types", "description")
POLICY_FIELDS = (
    *CREATE_FIELDS,
    "retry_schedule",
    "rate_limit",
    "ordering",
    "headers",
    "filter",
)
Body = TypeVar("Body", bound=BaseModel)
_LIST_SEPARATORS = re.compile(r"[,\s]+")
_PATTERN_HINTS = {
    "event_types": "an event type is letters, digits, '_', '.', '-', or a prefix ending in '.*'",
    "headers": "a header name is letters, digits and !#$%&'*+-.^_`|~ (no spaces)",
}


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _base(tenant: AuthTenant) -> str:
    return f"/ui/tenants/{tenant.ref}/endpoints"


def _ref(endpoint: Endpoint) -> str:
    return format_id(Kind.ENDPOINT, endpoint.public_id)


# -- forms ---------------------------------------------------------------------------------


def _texts(form: FormData, fields: tuple[str, ...]) -> dict[str, str]:
    """The submitted text of each field ("" when absent), as typed (to show it again)."""
    texts: dict[str, str] = {}
    for name in fields:
        value = form.get(name)
        texts[name] = value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""
    return texts


def _items(text: str) -> list[str]:
    """A comma- (or space-, or line-) separated list."""
    return [item for item in _LIST_SEPARATORS.split(text) if item]


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def headers_text(headers: dict[str, str] | None) -> str:
    """Custom headers as the form shows them: ``Name: value`` per line (already redacted)."""
    return "\n".join(f"{name}: {value}" for name, value in (headers or {}).items())


def _normalized(text: str) -> str:
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _parse_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name:
            raise ValueError(f"line {number}: write one header per line as Name: value")
        if name in headers:
            raise ValueError(f"line {number}: header {name!r} appears twice")
        headers[name] = value.strip()
    return headers


def _parse_filter(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None


def _validation_errors(exc: ValidationError) -> dict[str, str]:
    """Form field → message: an error inside a list or an object is the field's own."""
    found: dict[str, str] = {}
    for error in exc.errors():
        loc = error["loc"]
        field = str(loc[0]) if loc else "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch":
            message = _PATTERN_HINTS.get(field, "not in the expected format")
            message = f"{error['input']!r}: {message}"
        elif field == "retry_schedule" and len(loc) > 1 and isinstance(loc[1], int):
            message = f"delay {loc[1] + 1}: {message}"
        found.setdefault(field, message)
    return found


def _app_errors(exc: AppError) -> dict[str, str]:
    """The fields a service's error names (the URL the SSRF guard refused), else the form."""
    if exc.fields:
        return {f.get("field", "form"): f.get("message", exc.message) for f in exc.fields}
    return {"form": exc.message}


@dataclass
class Parsed:
    """A form read into the API's body fields, or the fields that could not be read."""

    body: dict[str, Any]
    errors: dict[str, str]


def _parse(texts: dict[str, str], *, stored_headers: str | None = None) -> Parsed:
    """The API body of a create (``stored_headers`` None) or policy form. An empty field is
    unset (null); headers shown as stored (secrets redacted) and sent back unchanged are
    left out, and so stay as they are."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if not texts["url"]:
        errors["url"] = "required"
    else:
        body["url"] = texts["url"]
    body["event_types"] = _items(texts["event_types"])
    body["description"] = texts["description"] or None
    if stored_headers is None:
        return Parsed(body, errors)
    body["retry_schedule"] = _items(texts["retry_schedule"]) or None
    body["rate_limit"] = texts["rate_limit"] or None
    body["ordering"] = texts["ordering"] or Ordering.UNORDERED.value
    if _normalized(texts["headers"]) != _normalized(stored_headers):
        try:
            body["headers"] = _parse_headers(texts["headers"]) or None
        except ValueError as exc:
            errors["headers"] = str(exc)
    if texts["filter"]:
        try:
            body["filter"] = _parse_filter(texts["filter"])
        except ValueError as exc:
            errors["filter"] = str(exc)
    else:
        body["filter"] = None
    return Parsed(body, errors)


def _validated(model: type[Body], parsed: Parsed) -> tuple[Body | None, dict[str, str]]:
    """The body validated by the API's schema (None if anything is wrong), and the errors of
    every field: those the form could not read, then those the schema refused."""
    errors = dict(parsed.errors)
    try:
        data = model.model_validate(parsed.body)
    except ValidationError as exc:
        for field, message in _validation_errors(exc).items():
            errors.setdefault(field, message)
        return None, errors
    return (None if errors else data), errors


def policy_texts(endpoint: EndpointRead) -> dict[str, str]:
    """The policy form's fields for the endpoint as stored."""
    return {
        "url": endpoint.url,
        "event_types": ", ".join(endpoint.event_types),
        "description": endpoint.description or "",
        "retry_schedule": ", ".join(_number(d) for d in endpoint.retry_schedule or []),
        "rate_limit": _number(endpoint.rate_limit),
        "ordering": endpoint.ordering.value,
        "headers": headers_text(endpoint.headers),
        "filter": json.dumps(endpoint.filter, indent=2) if endpoint.filter is not None else "",
    }


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
    endpoint = EndpointRead.of(row, tenant.ref, endpoints.endpoint_headers(row, runtime.secrets))
    rows = await runtime.deliveries.list_deliveries(
        session,
        tenant_id=tenant.id,
        endpoint_id=row.id,
        statuses=[],
        since=None,
        limit=HEALTH_WINDOW,
        before=None,
    )
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
    texts = _texts(form, CREATE_FIELDS)
    data, errors = _validated(EndpointCreate, _parse(texts))
    if data is not None:
        try:
            checked = await endpoints.check(data, runtime.settings)  # before the transaction
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
            errors = _app_errors(exc)
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
    texts = _texts(form, POLICY_FIELDS)
    data, errors = _validated(EndpointUpdate, _parse(texts, stored_headers=stored_headers))
    if data is not None:
        try:
            checked = await endpoints.check(data, runtime.settings)  # before the transaction
            async with runtime.db.write() as session:
                row = await endpoints.update_endpoint(
                    session,
                    tenant_id=tenant.id,
                    endpoint_id=endpoint_id,
                    checked=checked,
                    secrets=runtime.secrets,
                )
                if data.ordering == Ordering.UNORDERED:
                    # Deliveries that waited for their FIFO turn go out now (as the API does).
                    await runtime.deliveries.release_waiting(session, row.id)
            return see_other(f"{_base(tenant)}/{endpoint_id}?notice=saved")
        except AppError as exc:
            if exc.status_code != 422:
                raise
            errors = _app_errors(exc)
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
