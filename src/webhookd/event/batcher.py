"""Group commit for publishing: concurrent publishes share one transaction.

A request hands its event to the batcher and waits; one task takes every request waiting at
that moment (up to ``max_batch``), publishes them together in one transaction, commits, and
then answers each. While a batch commits the next one gathers, so the batch size follows
the load: one at a time when idle, hundreds under a burst. Every answer is still sent only
after its event is committed.
"""

from __future__ import annotations

import asyncio

import structlog

from webhookd.db import Database
from webhookd.event.schemas import EventCreate
from webhookd.event.service import Published, publish_events

log = structlog.get_logger("webhookd.publish")

Request = tuple[int, EventCreate, "asyncio.Future[Published]"]


class PublishBatcher:
    def __init__(self, db: Database, *, max_batch: int = 500) -> None:
        self.db = db
        self.max_batch = max_batch
        self._waiting: list[Request] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhookd-publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for *_, answer in self._waiting:
            answer.cancel()
        self._waiting.clear()

    async def publish(self, tenant_id: int, data: EventCreate) -> Published:
        answer: asyncio.Future[Published] = asyncio.get_running_loop().create_future()
        self._waiting.append((tenant_id, data, answer))
        self._wake.set()
        return await answer

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._commit(batch)

    async def _commit(self, batch: list[Request]) -> None:
        try:
            async with self.db.write() as session:
                results = await publish_events(
                    session, batch=[(tenant_id, data) for tenant_id, data, _ in batch]
                )
        except Exception as exc:
            log.exception("publish.batch_failed", size=len(batch))
            for *_, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for (*_, answer), result in zip(batch, results, strict=True):
            if not answer.done():  # a client that went away cancelled its wait
                answer.set_result(result)
