"""The FastAPI application: ``create_app(settings)`` and the lifespan that owns its resources."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from webhookd import __version__
from webhookd.bodylimit import BodyLimitMiddleware
from webhookd.config import Settings
from webhookd.db import Database
from webhookd.delivery.engine import DeliveryEngine
from webhookd.delivery.http import create_client
from webhookd.delivery.repository import refresh_gauges
from webhookd.delivery.routes import router as dlq_router
from webhookd.endpoint.routes import router as endpoint_router
from webhookd.errors import ORJSONResponse, error_body, error_responses, install_error_handlers
from webhookd.event.batcher import PublishBatcher
from webhookd.event.ingest import IngestFastPath
from webhookd.event.routes import router as event_router
from webhookd.heap import freeze_startup_heap
from webhookd.logging import configure_logging
from webhookd.queue.base import DeliveryQueue
from webhookd.queue.celery import CeleryQueue
from webhookd.queue.inprocess import DatabaseOnlyQueue, InProcessQueue
from webhookd.ratelimit import FailureThrottle, create_rate_limiter
from webhookd.security import resolve_admin_key, resolve_server_secrets
from webhookd.tenant.keycache import ApiKeyCache, lookup_tenant
from webhookd.tenant.routes import router as tenant_router

DESCRIPTION = """
Multi-tenant webhook delivery: publish events, webhookd signs and delivers them to every
subscribed endpoint, retries with exponential backoff and parks what keeps failing in a
dead-letter queue.

Authenticate tenant calls with `X-API-Key`, operator calls with `X-Admin-Key`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        client = None  # the delivery HTTP client, only where this process delivers
        queue: DeliveryQueue
        if settings.broker_url:
            queue = CeleryQueue()  # Celery workers deliver; this process only publishes
        elif settings.run_workers:
            client = create_client(settings)
            queue = InProcessQueue(DeliveryEngine(settings, db, client, app.state.secrets.box))
        else:
            queue = DatabaseOnlyQueue()
        app.state.db = db
        app.state.queue = queue
        app.state.publisher = PublishBatcher(db)
        app.state.rate_limiter = create_rate_limiter(settings)
        await queue.start()
        await app.state.publisher.start()
        freeze_startup_heap()  # the full GC pauses were the publish p99 (heap.py)
        try:
            yield
        finally:
            await app.state.publisher.stop()
            await queue.stop()
            await app.state.rate_limiter.close()
            if client is not None:
                await client.close()
            await db.dispose()

    app = FastAPI(
        title="webhookd",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_body_size=settings.max_payload_bytes)
    app.add_middleware(IngestFastPath, max_body_size=settings.max_payload_bytes)
    app.state.settings = settings
    app.state.admin_key = resolve_admin_key(settings)[0]
    app.state.secrets = resolve_server_secrets(settings)
    app.state.auth_throttle = FailureThrottle(settings.auth_failures_per_minute)
    app.state.key_cache = ApiKeyCache(
        settings.api_key_cache_seconds, lookup=lambda h: lookup_tenant(app.state.db.engine, h)
    )
    install_error_handlers(app)
    for router in (tenant_router, endpoint_router, event_router, dlq_router):
        app.include_router(router)
    _add_operational_routes(app)
    return app


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], response_model=None, responses=error_responses(503))
    async def ready() -> dict[str, str] | ORJSONResponse:
        """Readiness: the database answers."""
        try:
            async with app.state.db.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            return ORJSONResponse(error_body("not_ready", "database unreachable"), status_code=503)
        return {"status": "ready"}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics. The gauges of database state are read from the database at
        each scrape, so they are right whichever process answers."""
        async with app.state.db.read() as session:
            await refresh_gauges(session)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
