"""The operator console: sign-in, overview, tenants. Pages call the same services as the
API (no SQL here); every change is a POSTed form checked for its CSRF token."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, QueryParams

from webhookd.api.deps import (
    RuntimeDep,
    SecretsDep,
    SessionDep,
    WriteSessionDep,
    check_admin_key,
    tenant_named,
)
from webhookd.endpoint.service import check_url
from webhookd.errors import AppError
from webhookd.stats.sampler import Point
from webhookd.stats.service import chart, overview
from webhookd.tenant import service as tenants
from webhookd.tenant.schemas import TenantCreate, TenantRead, TenantUpdate
from webhookd.ui.session import (
    COOKIE,
    ConsoleDep,
    FormDep,
    console_sessions,
    same_origin,
    set_session_cookie,
)
from webhookd.ui.templating import render

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50


def _next_path(value: str | None) -> str:
    """Where to go after signing in: a path of the console, nothing else."""
    if value and value.startswith("/ui") and not value.startswith("//"):
        return value
    return "/ui"


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def form_errors(exc: ValidationError) -> dict[str, str]:
    """Field name → message, for the form to show beside each field."""
    found: dict[str, str] = {}
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch":
            message = "not in the expected format"
        found.setdefault(field, message)
    return found


def form_values(form: FormData | QueryParams, fields: tuple[str, ...]) -> dict[str, Any]:
    """The non-empty text fields of a form or query (an empty field means: not given)."""
    values: dict[str, Any] = {}
    for name in fields:
        value = form.get(name)
        if isinstance(value, str) and value.strip() != "":
            values[name] = value.strip()
    return values


# -- signing in ----------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
    return render(request, "login.html", next=_next_path(next))


@router.post("/login")
async def login(
    request: Request,
    admin_key: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/ui",  # noqa: A002
) -> Response:
    if not same_origin(request):
        return render(request, "login.html", status_code=403, error="refused: another site")
    try:
        check_admin_key(request, admin_key)
    except AppError as exc:
        message = "That is not the admin key." if exc.status_code == 401 else exc.message
        return render(request, "login.html", status_code=exc.status_code, error=message, next=next)
    cookie, _ = console_sessions(request.app).issue()
    response = see_other(_next_path(next))
    set_session_cookie(response, request, cookie)
    return response


@router.post("/logout")
async def logout(_: FormDep) -> Response:
    response = see_other("/ui/login")
    response.delete_cookie(COOKIE, path="/")
    return response


# -- overview ------------------------------------------------------------------------------


Window = Annotated[Literal["hour", "day"], Query()]


@router.get("")
async def overview_page(
    request: Request, console: ConsoleDep, session: SessionDep, window: Window = "hour"
) -> Response:
    points = await chart(session, window=window)
    return render(
        request,
        "overview.html",
        csrf=console.csrf,
        figures=await overview(session),
        window=window,
        summary=summarise(points),
        points=[p for p in points if p.events_per_second or p.deliveries_per_second][-10:],
    )


@router.get("/overview/series")
async def overview_series(
    _: ConsoleDep, session: SessionDep, response: Response, window: Window = "hour"
) -> dict[str, list[Any]]:
    """The chart's data, as columns (uPlot's shape): times in seconds, then each series."""
    points = await chart(session, window=window)
    columns: dict[str, list[Any]] = {"at": [p.at.timestamp() for p in points]}
    for name in (
        "events_per_second",
        "deliveries_per_second",
        "success_rate",
        "p50_ms",
        "p99_ms",
        "backlog",
        "dead_letters",
    ):
        columns[name] = [getattr(p, name) for p in points]
    response.headers["Cache-Control"] = "no-store"
    return columns


def summarise(points: list[Point]) -> dict[str, Any]:
    """The window in a few numbers, for the page without JavaScript."""
    rated = [p for p in points if p.success_rate is not None]
    return {
        "events_per_second": round(sum(p.events_per_second for p in points) / len(points), 2)
        if points
        else 0,
        "deliveries_per_second": round(
            sum(p.deliveries_per_second for p in points) / len(points), 2
        )
        if points
        else 0,
        "success_rate": round(100 * sum(p.success_rate or 0 for p in rated) / len(rated), 1)
        if rated
        else None,
        "p99_ms": max((p.p99_ms for p in points if p.p99_ms is not None), default=None),
    }


# -- tenants -------------------------------------------------------------------------------

TENANT_FIELDS = ("name", "email", "rate_limit", "uid")
TENANT_SETTINGS = (*TENANT_FIELDS, "operational_webhook_url", "retention_days")


@router.get("/tenants")
async def tenants_page(
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    rows = await tenants.list_tenants(session, limit=PAGE_SIZE, after=after)
    return render(
        request,
        "tenants.html",
        csrf=console.csrf,
        tenants=[TenantRead.of(t) for t in rows],
        after=rows[-1].id if len(rows) == PAGE_SIZE else None,
        values={},
        errors={},
    )


@router.post("/tenants")
async def create_tenant(
    request: Request,
    form: FormDep,
    console: ConsoleDep,
    session: WriteSessionDep,
    secrets: SecretsDep,
) -> Response:
    values = form_values(form, TENANT_FIELDS)
    try:
        data = TenantCreate.model_validate(values)
        new = await tenants.create_tenant(session, data=data, secrets=secrets)
    except ValidationError as exc:
        return await _tenants_with_errors(request, console.csrf, session, values, form_errors(exc))
    except AppError as exc:
        errors = {"uid" if exc.code == "uid_taken" else "form": exc.message}
        return await _tenants_with_errors(request, console.csrf, session, values, errors)
    tenant = TenantRead.of(new.tenant)
    return render(
        request,
        "shown_once.html",
        csrf=console.csrf,
        title=f"Tenant {tenant.name} created",
        tenant=tenant,
        secrets={"API key": new.api_key, "Signing secret": new.secret_key},
    )


async def _tenants_with_errors(
    request: Request, csrf: str, session: Any, values: dict[str, Any], errors: dict[str, str]
) -> Response:
    rows = await tenants.list_tenants(session, limit=PAGE_SIZE, after=None)
    return render(
        request,
        "tenants.html",
        csrf=csrf,
        status_code=422,
        tenants=[TenantRead.of(t) for t in rows],
        after=None,
        values=values,
        errors=errors,
    )


@router.get("/tenants/{tenant_id}")
async def tenant_page(
    request: Request, tenant_id: str, console: ConsoleDep, session: SessionDep, runtime: RuntimeDep
) -> Response:
    ref = await tenant_named(runtime, tenant_id)
    row = await tenants.get_tenant(session, tenant_id=ref.id)
    return render(
        request, "tenant.html", csrf=console.csrf, tenant=TenantRead.of(row), errors={}, saved=False
    )


@router.post("/tenants/{tenant_id}")
async def update_tenant(
    request: Request,
    tenant_id: str,
    form: FormDep,
    console: ConsoleDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
) -> Response:
    ref = await tenant_named(runtime, tenant_id)
    values: dict[str, Any] = dict.fromkeys(("uid", "operational_webhook_url", "retention_days"))
    values |= form_values(form, TENANT_SETTINGS)
    values["strict_event_types"] = form.get("strict_event_types") == "on"
    try:
        data = TenantUpdate.model_validate(values)
        if data.operational_webhook_url is not None:
            await check_url(
                data.operational_webhook_url, runtime.settings, field="operational_webhook_url"
            )
        runtime.key_cache.forget_on_commit(session, ref.id)
        runtime.catalog.forget_on_commit(session, ref.id)
        row = await tenants.update_tenant(session, tenant_id=ref.id, data=data)
    except ValidationError as exc:
        return await _tenant_with_errors(request, console.csrf, session, ref.id, form_errors(exc))
    except AppError as exc:
        field = (exc.fields or [{}])[0].get("field", "uid" if exc.code == "uid_taken" else "form")
        return await _tenant_with_errors(
            request, console.csrf, session, ref.id, {field: exc.message}
        )
    return render(
        request, "tenant.html", csrf=console.csrf, tenant=TenantRead.of(row), errors={}, saved=True
    )


async def _tenant_with_errors(
    request: Request, csrf: str, session: Any, tenant_id: int, errors: dict[str, str]
) -> Response:
    await session.rollback()
    row = await tenants.get_tenant(session, tenant_id=tenant_id)
    return render(
        request,
        "tenant.html",
        csrf=csrf,
        status_code=422,
        tenant=TenantRead.of(row),
        errors=errors,
        saved=False,
    )


@router.post("/tenants/{tenant_id}/rotate-api-key")
async def rotate_api_key(
    request: Request,
    tenant_id: str,
    _: FormDep,
    console: ConsoleDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    secrets: SecretsDep,
) -> Response:
    ref = await tenant_named(runtime, tenant_id)
    runtime.key_cache.forget_on_commit(session, ref.id)
    row, api_key = await tenants.rotate_api_key(session, tenant_id=ref.id, secrets=secrets)
    return render(
        request,
        "shown_once.html",
        csrf=console.csrf,
        title="New API key",
        tenant=TenantRead.of(row),
        secrets={"API key": api_key},
        note="The previous key stopped working.",
    )


@router.post("/tenants/{tenant_id}/rotate-secret")
async def rotate_secret(
    request: Request,
    tenant_id: str,
    _: FormDep,
    console: ConsoleDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    secrets: SecretsDep,
) -> Response:
    ref = await tenant_named(runtime, tenant_id)
    grace = dt.timedelta(days=1)
    row, secret_key = await tenants.rotate_secret(
        session, tenant_id=ref.id, grace=grace, secrets=secrets
    )
    return render(
        request,
        "shown_once.html",
        csrf=console.csrf,
        title="New signing secret",
        tenant=TenantRead.of(row),
        secrets={"Signing secret": secret_key},
        note="The previous secret keeps signing beside it for one day.",
    )
