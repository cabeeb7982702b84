"""Distributed delivery: after each commit the API tells Celery workers (on RabbitMQ) that
deliveries are due; the workers deliver.

The database stays the source of truth. A publish that fails (broker down) only loses a
wake-up: the rows are due in the database and the workers' dispatchers find them at their
next poll. Publishing happens in the background so that a slow broker never delays the
publisher's 202.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence

import structlog
from celery import Celery

from webhookd import metrics
from webhookd.config import Settings
from webhookd.db import network_wait

log = structlog.get_logger("webhookd.queue")

DELIVER_TASK = "webhookd.deliver"


def create_celery(settings: Settings) -> Celery:
    """A Celery app on the settings' broker, configured alike in the API (which only sends
    ``webhookd.deliver``) and in workers (``webhookd.worker``)."""
    celery = Celery("webhookd", set_as_current=False)
    celery.conf.update(
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
    return celery


class CeleryQueue:
    """Sends delivery ids in batches, because a Celery message costs the API, the broker and
    a worker about as much CPU as the HTTP delivery it carries. Ids submitted within
    ``linger`` seconds of each other (up to ``max_batch``) travel in one task; while traffic
    keeps coming, messages are also spaced at least ``spacing`` seconds apart, so that a busy
    API sends a few large tasks a second rather than hundreds of small ones. After a quiet
    moment the first ids go out after ``linger`` alone (light load keeps its latency)."""

    def __init__(
        self,
        celery: Celery,
        *,
        max_batch: int = 200,
        linger: float = 0.005,
        spacing: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.celery = celery
        self.max_batch = max_batch
        self.linger = linger
        self.spacing = spacing
        self._clock = clock
        self._last_flush = -math.inf
        self._ids: list[int] = []
        self._timer: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    def submit(self, delivery_ids: Sequence[int], from_key: int | None = None) -> None:
        self._ids.extend(delivery_ids)  # a worker's claim searches from the head anyway
        if len(self._ids) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay(), self._flush)

    def lessee(self) -> None:
        return None  # the workers claim what the API publishes

    def delay(self) -> float:
        """Seconds to wait before sending what was just submitted: ``linger``, or longer to
        keep ``spacing`` after the previous message."""
        return max(self.linger, self._last_flush + self.spacing - self._clock())

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ids, self._ids = self._ids, []
        if ids:
            self._last_flush = self._clock()
            task = asyncio.create_task(self._send(ids))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _send(self, delivery_ids: list[int]) -> None:
        network_wait("a message to the broker")
        try:
            await asyncio.to_thread(
                self.celery.send_task, DELIVER_TASK, args=[delivery_ids], retry=False
            )
        except Exception as exc:
            metrics.BROKER_PUBLISH_FAILURES.inc()
            log.warning(
                "queue.publish_failed",
                deliveries=len(delivery_ids),
                error=type(exc).__name__,
                note="rows stay due; the workers' dispatchers find them at their next poll",
            )

    async def stop(self) -> None:
        self._flush()
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
