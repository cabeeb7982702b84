"""Celery workers: ``webhookd worker``, or ``celery -A webhookd.worker worker`` as in the brief.

A worker process runs one asyncio loop in a background thread with the same delivery engine
as the embedded mode: pooled aiohttp client, batched writer, and a dispatcher that claims due
rows from the database in fair order with per-endpoint caps (retries, expired leases and
new deliveries alike). The database is the queue; a ``webhookd.deliver`` message from
RabbitMQ only wakes a worker's dispatcher at once instead of at its next poll. A lost
message costs at most ``poll_interval`` of latency; a worker killed mid-delivery leaves
leased rows that fall due again when the lease expires.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog
from celery import Celery
from celery.signals import worker_ready, worker_shutdown
from prometheus_client import REGISTRY, start_http_server

from webhookd import metrics
from webhookd.config import Settings
from webhookd.db import Database
from webhookd.delivery.engine import DeliveryEngine
from webhookd.delivery.http import create_client
from webhookd.heap import freeze_startup_heap
from webhookd.logging import configure_logging
from webhookd.security import resolve_server_secrets

T = TypeVar("T")
log = structlog.get_logger("webhookd.worker")

settings = Settings()
app = Celery("webhookd")
app.conf.update(
    broker_url=settings.broker_url or "memory://",
    broker_connection_retry_on_startup=True,
    broker_connection_timeout=2,
    task_default_queue=settings.worker_queue,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_pool="threads",
    worker_concurrency=settings.worker_concurrency,
    worker_prefetch_multiplier=2,
    worker_hijack_root_logger=False,  # keep webhookd's JSON logging
    worker_redirect_stdouts=False,  # the JSON logs write to the real stdout
    worker_send_task_events=False,
    # No remote-control queue: nothing uses it, and several workers on one host would
    # otherwise collide on its exclusive queue unless each were given a unique -n name.
    worker_enable_remote_control=False,
)


class WorkerRuntime:
    """The asyncio half of a worker process: an event loop in its own thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="webhookd-engine", daemon=True
        )
        self.engine: DeliveryEngine | None = None
        # Resolved here, in the caller's thread: a missing production secret stops the worker
        # (SystemExit) instead of killing the event loop thread.
        self.box = resolve_server_secrets(settings).box

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        self.db = Database(self.settings)
        self.client = create_client(self.settings)
        self.engine = DeliveryEngine(self.settings, self.db, self.client, self.box)
        await self.engine.start()

    async def _stop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        await self.client.close()
        await self.db.dispose()

    def stop(self) -> None:
        try:
            self.call(self._stop(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> WorkerRuntime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            configure_logging(settings.log_level)
            _runtime = WorkerRuntime(settings)
            _runtime.start()
        return _runtime


@app.task(name="webhookd.deliver")
def deliver(delivery_ids: list[int]) -> int:
    """New deliveries are due: wake the dispatcher, which claims them (and whatever else is
    due first in fair order) as slots allow. Returns how many ids the message announced."""
    rt = runtime()
    assert rt.engine is not None
    rt.loop.call_soon_threadsafe(rt.engine.wake)
    return len(delivery_ids)


@worker_ready.connect
def _on_worker_ready(**_: Any) -> None:
    # Database state gauges are the API's to export (from the database, at each scrape);
    # a worker exporting them too would double them in any sum across instances.
    for gauge in (metrics.DLQ_SIZE, metrics.DELIVERIES_DUE):
        REGISTRY.unregister(gauge)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    runtime()  # start the engine (and its sweeper) now, not at the first task
    freeze_startup_heap()
    log.info("worker.ready", metrics_port=settings.metrics_port, queue=settings.worker_queue)


@worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    if _runtime is not None:
        _runtime.stop()
