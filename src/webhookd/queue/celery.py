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
    def __init__(self) -> None:
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        return None

    async def submit(self, delivery_ids: Sequence[int]) -> None:
        task = asyncio.create_task(self._publish(list(delivery_ids)))
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
        if self._pending:
            await asyncio.wait(self._pending, timeout=5)
