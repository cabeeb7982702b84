"""What a running webhookd process holds, built in one place.

:func:`build_runtime` creates the resources a process needs from its settings and closes
them when it is done: the API's lifespan (``app.py``) and each Celery worker process
(``worker.py``) build their :class:`Runtime` with it, so both read the same settings the
same way. Roles:

- ``api``: publishes, and delivers in-process unless deliveries go to Celery workers
  (``WEBHOOKD_BROKER_URL``) or are left to other processes (``WEBHOOKD_RUN_WORKERS=false``);
- ``worker``: delivers only (a Celery worker process).

Where a process delivers, it also runs the background jobs and the retention purge
(``jobs/runner.py``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import aiohttp

from webhookd import metrics
from webhookd.config import Settings
from webhookd.db import Database
from webhookd.delivery import engine as delivery_engine
from webhookd.delivery.engine import DeliveryEngine
from webhookd.delivery.fairness import FairClock
from webhookd.delivery.http import create_client
from webhookd.delivery.lifecycle import Transition
from webhookd.delivery.policy import EndpointPolicy
from webhookd.delivery.service import DeliveryService
from webhookd.delivery.store import DeliveryStore, create_store
from webhookd.event.batcher import PublishBatcher
from webhookd.eventtype.catalog import EventTypeCatalog, catalog_rows
from webhookd.jobs.runner import JobRunner
from webhookd.queue.base import DeliveryQueue
from webhookd.queue.inprocess import DatabaseOnlyQueue, InProcessQueue
from webhookd.ratelimit import (
    EndpointLimiter,
    MemoryRateLimiter,
    RateLimiter,
    create_endpoint_limiter,
    create_rate_limiter,
)
from webhookd.security import ServerSecrets, resolve_server_secrets
from webhookd.stats.sampler import Sampler
from webhookd.tenant.keycache import ApiKeyCache, lookup_tenant
from webhookd.throttle import FailureThrottle

Role = Literal["api", "worker"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    secrets: ServerSecrets
    db: Database
    store: DeliveryStore
    policy: EndpointPolicy
    queue: DeliveryQueue
    deliveries: DeliveryService
    publisher: PublishBatcher
    rate_limiter: RateLimiter
    key_cache: ApiKeyCache
    catalog: EventTypeCatalog
    auth_throttle: FailureThrottle
    client: aiohttp.ClientSession | None = None  # where this process delivers
    engine: DeliveryEngine | None = None
    endpoint_limiter: EndpointLimiter | None = None  # endpoints' rate limits, where delivering
    jobs: JobRunner | None = None  # background jobs and the retention purge, where delivering
    sampler: Sampler | None = None  # the console's chart history (stats/sampler.py)


@contextlib.asynccontextmanager
async def build_runtime(
    settings: Settings, *, role: Role = "api", secrets: ServerSecrets | None = None
) -> AsyncIterator[Runtime]:
    """Build, start, and finally stop and close everything a process of ``role`` needs."""
    secrets = secrets or resolve_server_secrets(settings)
    metrics.configure(
        tenant_label=settings.metrics_tenant_label,
        max_tenants=settings.metrics_max_tenants,
        max_event_types=settings.metrics_max_event_types,
    )
    policy = EndpointPolicy.from_settings(settings)
    db = Database(settings)
    store = create_store(db.engine.dialect.name, decrypt=secrets.box.decrypt_cached)
    client: aiohttp.ClientSession | None = None
    engine: DeliveryEngine | None = None
    endpoint_limiter: EndpointLimiter | None = None
    queue: DeliveryQueue
    if role == "api" and settings.broker_url:
        from webhookd.queue.celery import CeleryQueue, create_celery  # Celery only with a broker

        queue = CeleryQueue(create_celery(settings))  # Celery workers deliver
    elif role == "worker" or settings.run_workers:
        client = create_client(settings)
        endpoint_limiter = create_endpoint_limiter(settings)
        engine = DeliveryEngine(settings, db, store, client, policy, endpoint_limiter)
        queue = InProcessQueue(engine)
    else:
        queue = DatabaseOnlyQueue()  # other processes deliver
    deliveries = DeliveryService(store=store, queue=queue, clock=FairClock())
    runtime = Runtime(
        settings=settings,
        secrets=secrets,
        db=db,
        store=store,
        policy=policy,
        queue=queue,
        deliveries=deliveries,
        publisher=PublishBatcher(db, deliveries),
        rate_limiter=create_rate_limiter(settings) if role == "api" else MemoryRateLimiter(),
        key_cache=ApiKeyCache(
            settings.api_key_cache_seconds, lookup=lambda h: lookup_tenant(db.engine, h)
        ),
        catalog=EventTypeCatalog(
            settings.event_type_cache_seconds,
            lookup=functools.partial(catalog_rows, db.engine),
        ),
        auth_throttle=FailureThrottle(settings.auth_failures_per_minute),
        client=client,
        engine=engine,
        endpoint_limiter=endpoint_limiter,
    )
    if engine is not None:
        runtime.jobs = JobRunner(settings, db, store, deliveries)
    runtime.sampler = Sampler(
        db, interval=settings.metrics_sample_interval, database_state=role == "api"
    )
    try:
        await queue.start()
        await runtime.sampler.start()
        if role == "api":
            await runtime.publisher.start()
        if runtime.jobs is not None:
            await runtime.jobs.start()
        yield runtime
    finally:
        if runtime.jobs is not None:
            await runtime.jobs.stop()
        await runtime.sampler.stop()
        await runtime.publisher.stop()
        await queue.stop()
        await runtime.rate_limiter.close()
        if endpoint_limiter is not None:
            await endpoint_limiter.close()
        if client is not None:
            await client.close()
        await db.dispose()


async def deliver_due(runtime: Runtime) -> list[Transition]:
    """Attempt every delivery that is due now once and record the outcomes, without the
    engine or a server (tests, one-off runs); what an attempt schedules for later is left
    for later. The transitions made, in order."""
    async with contextlib.AsyncExitStack() as stack:
        client = runtime.client
        if client is None:
            client = await stack.enter_async_context(create_client(runtime.settings))
        return await delivery_engine.deliver_due(
            settings=runtime.settings,
            db=runtime.db,
            store=runtime.store,
            client=client,
            policy=runtime.policy,
        )
