"""Celery workers: ``webhookd worker``, or ``celery -A webhookd.worker worker`` as in the brief.

A worker process runs the same delivery engine as the embedded mode, on one asyncio loop in
a background thread, with a :class:`~webhookd.runtime.Runtime` built from the worker's
settings like the API's. The database is the queue; a ``webhookd.deliver`` message from
RabbitMQ only wakes the dispatcher at once instead of at its next poll. A lost message costs
at most ``poll_interval`` of latency; a worker killed mid-delivery leaves leased rows that
fall due again when the lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import celery as celery_package
import structlog
from celery import Celery
from celery.signals import celeryd_after_setup, setup_logging, worker_ready, worker_shutdown
from prometheus_client import REGISTRY, start_http_server

from webhookd import metrics
from webhookd.config import Settings, mask_password
from webhookd.heap import freeze_startup_heap
from webhookd.logging import configure_logging
from webhookd.queue.celery import DELIVER_TASK, create_celery
from webhookd.runtime import Runtime, build_runtime
from webhookd.security import resolve_server_secrets

T = TypeVar("T")
log = structlog.get_logger("webhookd.worker")


class WorkerProcess:
    """The asyncio half of a worker process: an event loop in its own thread that holds the
    runtime (and so the delivery engine) while the worker runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="webhookd-engine", daemon=True
        )
        # Resolved here, in the caller's thread: a missing production secret stops the worker
        # (SystemExit) instead of killing the event loop thread.
        self.secrets = resolve_server_secrets(settings)
        self.runtime: Runtime | None = None
        self._stack = contextlib.AsyncExitStack()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        runtime = build_runtime(self.settings, role="worker", secrets=self.secrets)
        self.runtime = await self._stack.enter_async_context(runtime)

    def wake(self) -> None:
        """Deliveries are due: claim now (thread-safe)."""
        if self.runtime is not None and self.runtime.engine is not None:
            self.loop.call_soon_threadsafe(self.runtime.engine.wake)

    def stop(self) -> None:
        try:
            self.call(self._stack.aclose(), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


def use_json_logging(settings: Settings) -> None:
    """Everything a worker writes is a JSON line, as the API's: Celery's loggers go through
    webhookd's handler (Celery configures no logging of its own when a ``setup_logging``
    receiver answers), its start-up banner becomes one ``worker.starting`` line, and Python
    warnings (Celery's SecurityWarning when run as root) are logged. Applied at once, so
    that what Celery says before it sets up logging is JSON too."""
    configure_logging(settings.log_level)
    logging.captureWarnings(True)

    def on_setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
        configure_logging(settings.log_level)
        logging.captureWarnings(True)
        if loglevel:  # Celery's own lines (connected, ready) at the worker's --loglevel
            logging.getLogger("celery").setLevel(loglevel)

    def on_after_setup(sender: str, instance: Any, **_: Any) -> None:
        instance.quiet = True  # no banner: what it says goes in this line
        app = instance.app
        log.info(
            "worker.starting",
            hostname=sender,
            celery=celery_package.__version__,
            broker=mask_password(settings.broker_url or ""),
            pool=app.conf.worker_pool,
            concurrency=instance.concurrency,
            queues=sorted(app.amqp.queues),
            tasks=sorted(name for name in app.tasks if not name.startswith("celery.")),
        )

    setup_logging.connect(on_setup_logging, weak=False, dispatch_uid="webhookd.logging")
    celeryd_after_setup.connect(on_after_setup, weak=False, dispatch_uid="webhookd.banner")


def create_worker_app(settings: Settings) -> Celery:
    """The Celery app of a worker process: the ``webhookd.deliver`` task, JSON logs, and the
    engine started when the worker is ready and stopped when it shuts down."""
    use_json_logging(settings)
    celery = create_celery(settings)
    process: WorkerProcess | None = None
    lock = threading.Lock()

    def started() -> WorkerProcess:
        nonlocal process
        with lock:
            if process is None:
                process = WorkerProcess(settings)
                process.start()
            return process

    @celery.task(name=DELIVER_TASK)
    def deliver(delivery_ids: list[int]) -> int:
        """New deliveries are due: wake the dispatcher, which claims them (and whatever else
        is due first in fair order) as slots allow. How many ids the message announced."""
        started().wake()
        return len(delivery_ids)

    def on_ready(**_: Any) -> None:
        # Database state gauges are the API's to export (from the database, at each scrape);
        # a worker exporting them too would double them in any sum across instances.
        for gauge in (metrics.DLQ_SIZE, metrics.DELIVERIES_DUE):
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(gauge)
        if settings.metrics_port:
            start_http_server(settings.metrics_port, addr=settings.metrics_host)
        started()  # start the engine now, not at the first task
        freeze_startup_heap()
        log.info("worker.ready", metrics_port=settings.metrics_port, queue=settings.worker_queue)

    def on_shutdown(**_: Any) -> None:
        if process is not None:
            process.stop()

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
    return celery


def __getattr__(name: str) -> Celery:
    """``celery -A webhookd.worker worker`` finds ``app`` here, built from the environment
    when Celery asks for it (``webhookd worker`` builds its own from its settings)."""
    if name == "app":
        app = create_worker_app(Settings())
        globals()["app"] = app
        return app
    raise AttributeError(name)
