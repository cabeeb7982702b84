"""Operational routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webhookd.api.deps import RuntimeDep
from webhookd.api.errors import ORJSONResponse, error_body, error_responses
from webhookd.delivery.service import refresh_gauges
from webhookd.errors import Unauthorized
from webhookd.security import keys_equal

router = APIRouter(tags=["operations"])
docs_router = APIRouter(include_in_schema=False)

STATIC = "/static/swagger"


@docs_router.get("/docs")
async def docs() -> HTMLResponse:
    """Swagger UI, from the files the package ships (no CDN: works offline)."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="webhookd API",
        swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon-32x32.png",
        oauth2_redirect_url=None,
    )


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready", response_model=None, responses=error_responses(503))
async def ready(runtime: RuntimeDep) -> dict[str, str] | ORJSONResponse:
    """Readiness: the database answers."""
    try:
        await runtime.db.ping()
    except Exception:
        return ORJSONResponse(error_body("not_ready", "database unreachable"), status_code=503)
    return {"status": "ready"}


@router.get("/metrics", response_class=Response, responses=error_responses(401))
async def metrics(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus metrics. The gauges of database state are read from the database at each
    scrape, so they are right whichever process answers. With `WEBHOOKD_METRICS_TOKEN` set,
    the scraper sends `Authorization: Bearer <token>` (the series name tenants)."""
    expected = runtime.settings.metrics_token
    if expected is not None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not keys_equal(given.strip(), expected):
            raise Unauthorized("GET /metrics needs Authorization: Bearer <WEBHOOKD_METRICS_TOKEN>")
    async with runtime.db.read() as session:
        await refresh_gauges(session)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
