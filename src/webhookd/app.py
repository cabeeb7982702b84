"""The FastAPI application: ``create_app(settings)`` and the lifespan that owns its runtime."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Scope

from webhookd import __version__
from webhookd.api.bodylimit import BodyLimitMiddleware
from webhookd.api.deps import AppConfig
from webhookd.api.errors import install_error_handlers
from webhookd.api.operations import STATIC, docs_router
from webhookd.api.operations import router as operations_router
from webhookd.api.paths import EncodedSlashGuard
from webhookd.api.server import LIMITS_KEY, HttpLimits
from webhookd.config import Settings
from webhookd.delivery.routes import deliveries_router
from webhookd.delivery.routes import router as dlq_router
from webhookd.endpoint.routes import router as endpoint_router
from webhookd.event.ingest import IngestFastPath
from webhookd.event.routes import router as event_router
from webhookd.eventtype.routes import router as event_type_router
from webhookd.heap import freeze_startup_heap
from webhookd.jobs.routes import router as jobs_router
from webhookd.logging import configure_logging
from webhookd.portal.routes import router as portal_api_router
from webhookd.runtime import build_runtime
from webhookd.security import resolve_admin_key, resolve_server_secrets
from webhookd.svix import routers as svix_routers
from webhookd.tenant.routes import router as tenant_router
from webhookd.ui.endpoint_pages import router as console_endpoint_router
from webhookd.ui.errors import install_page_errors
from webhookd.ui.event_pages import router as console_event_router
from webhookd.ui.pages import router as console_router
from webhookd.ui.portal_pages import router as portal_router
from webhookd.ui.portal_session import PortalSessions
from webhookd.ui.session import ConsoleSessions
from webhookd.ui.templating import STATIC as UI_STATIC

DESCRIPTION = """
Multi-tenant webhook delivery: publish events, webhookd signs and delivers them to every
subscribed endpoint, retries with exponential backoff and parks what keeps failing in a
dead-letter queue.

Authenticate tenant calls with `X-API-Key`, operator calls with `X-Admin-Key`.
"""


def _telemetry() -> TelemetryConfig | None:
    """FastAPI's OpenTelemetry as configured by the operator's ``OTEL_*`` variables; off
    when there are none (it then asks OpenTelemetry's providers on every request, ~2 % of
    the server's CPU at 100 events/s, to find nothing configured)."""
    if any(
        name.startswith("OTEL_") or name == "FASTAPI_OTEL_AUTO_CONFIGURE" for name in os.environ
    ):
        return None
    return TelemetryConfig(tracing=False, metrics=False, logs=False)


WARM_UP_PATH = "/.webhookd/warm-up"  # matches no route


async def warm_routes(app: FastAPI) -> None:
    """Build the routing tables now rather than in the first requests.

    FastAPI builds an included router's effective routes (their dependants and response
    models) on the first request that walks it: ~170 ms for all of webhookd's routers on
    this machine, with the event loop blocked, so the first requests after a start and the
    deliveries under way waited for it. A request that matches nothing walks every router;
    it goes straight to the router (not through the middleware: nothing is counted or
    logged), before the delivery engine starts."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": WARM_UP_PATH,
        "raw_path": WARM_UP_PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 0),
        "server": ("127.0.0.1", 0),
    }
    await app.router(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    # Resolved now, not in the lifespan: a production deployment without its secrets stops
    # before it listens.
    config = AppConfig(
        settings=settings,
        secrets=resolve_server_secrets(settings),
        admin_key=resolve_admin_key(settings)[0],
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await warm_routes(app)
        async with build_runtime(settings, role="api", secrets=config.secrets) as runtime:
            app.state.runtime = runtime
            freeze_startup_heap()
            # Lifespan state reaches the server's protocol (api/server.py): its limits.
            yield {LIMITS_KEY: HttpLimits.from_settings(settings)}

    app = FastAPI(
        title="webhookd",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from the package's own files (api/operations.py)
        redoc_url=None,
        telemetry=_telemetry(),
    )
    app.mount(STATIC, StaticFiles(packages=[("webhookd.api", "static/swagger")]), name="static")
    app.mount(UI_STATIC, StaticFiles(packages=[("webhookd.ui", "static")]), name="ui-static")
    app.state.config = config
    app.state.console_sessions = ConsoleSessions(
        pepper=config.secrets.pepper, admin_key=config.admin_key
    )
    app.state.portal_sessions = PortalSessions(pepper=config.secrets.pepper)
    app.add_middleware(BodyLimitMiddleware, max_body_size=settings.max_payload_bytes)
    app.add_middleware(IngestFastPath, max_body_size=settings.max_payload_bytes)
    app.add_middleware(EncodedSlashGuard)
    install_error_handlers(app)
    install_page_errors(app)
    routers = (
        tenant_router,
        endpoint_router,
        event_type_router,
        event_router,
        deliveries_router,
        dlq_router,
        jobs_router,
        operations_router,
        docs_router,
        console_router,
        console_endpoint_router,
        console_event_router,
        portal_api_router,
        portal_router,
        *svix_routers,  # the Svix-compatible API (docs/MIGRATING-FROM-SVIX.md)
    )
    for router in routers:
        app.include_router(router)
    return app
