"""Operational routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Header, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from webhookd.api.deps import RuntimeDep
from webhookd.api.errors import ErrorBody, ORJSONResponse, error_body, error_responses
from webhookd.delivery.service import refresh_gauges
from webhookd.errors import Unauthorized
from webhookd.runtime import Runtime
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


CHECK_TIMEOUT = 2.0  # seconds each readiness check may take
Check = Literal["ok", "down", "not_configured"]


class ReadinessChecks(BaseModel):
    database: Check
    redis: Check
    broker: Check


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: ReadinessChecks


class NotReady(ErrorBody):
    """The error shape (code ``not_ready``, the message names what is down) and the checks."""

    status: Literal["not_ready"]
    checks: ReadinessChecks


READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Readiness, "description": "Every dependency the configuration needs answers"},
    503: {"model": NotReady, "description": "A dependency is down (not_ready); see `checks`"},
}


# redis-py and kombu are imported by the checks that need them: the embedded default, which
# configures neither, never loads them.


async def _ping_redis(url: str) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
    )
    try:
        await cast("Awaitable[bool]", client.ping())  # typed for both clients, async here
    finally:
        await client.aclose()


def _connect_broker(url: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=CHECK_TIMEOUT) as conn:
        conn.ensure_connection(max_retries=0)  # one try: kombu retries from 1 on


async def _ping_broker(url: str) -> None:
    await asyncio.to_thread(_connect_broker, url)  # kombu connects with blocking sockets


async def _check(ping: Callable[[], Awaitable[None]] | None) -> Check:
    if ping is None:
        return "not_configured"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await ping()
    except Exception:
        return "down"
    return "ok"


def _pings(runtime: Runtime) -> dict[str, Callable[[], Awaitable[None]] | None]:
    """What this process needs, by name: the database always, Redis when the rate limits
    live there, the broker when Celery workers deliver."""
    settings = runtime.settings
    redis_url, broker_url = settings.redis_url, settings.broker_url
    return {
        "database": runtime.db.ping,
        "redis": (lambda: _ping_redis(redis_url)) if redis_url else None,
        "broker": (lambda: _ping_broker(broker_url)) if broker_url else None,
    }


@router.get("/ready", response_model=None, responses=READY_RESPONSES)
async def ready(runtime: RuntimeDep) -> dict[str, Any] | ORJSONResponse:
    """Readiness: every dependency the configuration needs answers (the database; Redis and
    the broker when configured), each checked at the same time and within 2 s. ``checks``
    reports each one: ``ok``, ``down`` or ``not_configured`` (never a reason for a 503)."""
    pings = _pings(runtime)
    results = await asyncio.gather(*(_check(ping) for ping in pings.values()))
    checks = dict(zip(pings, results, strict=True))
    down = [name for name, result in checks.items() if result == "down"]
    if down:
        body = error_body("not_ready", f"{', '.join(down)} unreachable")
        return ORJSONResponse({**body, "status": "not_ready", "checks": checks}, status_code=503)
    return {"status": "ready", "checks": checks}


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
