"""Distributed delivery: the API publishes delivery ids to RabbitMQ; Celery workers deliver.

The database stays the source of truth. A publish that fails (broker down) only loses a
wake-up: the rows are due in the database and the workers' own dispatchers (the sweeper)
claim them. Publishing happens in the background so that a slow broker never delays the
publisher's 202.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from webhookd import metrics

log = structlog.get_logger("webhookd.queue")


class CeleryQueue:
    """Publishes delivery ids in small batches: ids submitted within ``linger`` seconds of
    each other (up to ``max_batch``) travel in one task, because a Celery message costs a
    worker about as much CPU as the HTTP delivery it carries."""

    def __init__(self, *, max_batch: int = 200, linger: float = 0.005) -> None:
        self.max_batch = max_batch
        self.linger = linger
        self._ids: list[int] = []
        self._timer: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def submit(self, delivery_ids: Sequence[int]) -> None:
        self._ids.extend(delivery_ids)
        if len(self._ids) >= self.max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ids, self._ids = self._ids, []
        if ids:
            task = asyncio.create_task(self._publish(ids))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _publish(self, delivery_ids: list[int]) -> None:
        from webhookd.worker import deliver

        try:
            await asyncio.to_thread(deliver.apply_async, args=[delivery_ids], retry=False)
        except Exception as exc:
            metrics.BROKER_PUBLISH_FAILURES.inc()
            log.warning(
                "queue.publish_failed",
                deliveries=len(delivery_ids),
                error=type(exc).__name__,
                note="rows stay due; workers' sweepers deliver them",
            )

    async def stop(self) -> None:
        self._flush()
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
