"""Group commit for publishing: concurrent publishes share one transaction.

A request hands its event to the batcher and waits; one task takes every request waiting at
that moment (up to ``max_batch``), publishes them together in one transaction, commits, and
then answers each. While a batch commits the next one gathers, so the batch size follows
the load: one at a time when idle, hundreds under a burst. Every answer is still sent only
after its event is committed.
"""

from __future__ import annotations

import asyncio
import random

import structlog
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from webhookd.db import Database, transaction_conflict
from webhookd.delivery.service import DeliveryService
from webhookd.errors import AppError, NotFound, Unauthorized
from webhookd.event.schemas import EventAccepted, EventCreate
from webhookd.event.service import publish_events
from webhookd.logging import log_failure
from webhookd.tenant.service import ensure_tenant

log = structlog.get_logger("webhookd.publish")

Request = tuple[int, EventCreate, "asyncio.Future[EventAccepted]"]
MAX_CONFLICT_RETRIES = 3  # a batch PostgreSQL aborted as a deadlock victim runs again


class PublishBatcher:
    def __init__(self, db: Database, deliveries: DeliveryService, *, max_batch: int = 500) -> None:
        self.db = db
        self.deliveries = deliveries
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

    async def publish(self, tenant_id: int, data: EventCreate) -> EventAccepted:
        """The answer to the publish, once it is committed."""
        answer: asyncio.Future[EventAccepted] = asyncio.get_running_loop().create_future()
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

    async def _commit(
        self, batch: list[Request], *, retry: bool = True, conflicts: int = 0
    ) -> None:
        try:
            async with self.db.write() as session:
                results = await publish_events(
                    session,
                    deliveries=self.deliveries,
                    batch=[(tenant_id, data) for tenant_id, data, _ in batch],
                )
        except DBAPIError as exc:
            if transaction_conflict(exc) and conflicts < MAX_CONFLICT_RETRIES:
                # PostgreSQL aborted the whole transaction to break a deadlock with delivering
                # processes (nothing of it was kept): run it again after a short pause.
                log.warning("publish.batch_retried", size=len(batch), reason="conflict")
                await asyncio.sleep(random.uniform(0.005, 0.02) * (conflicts + 1))  # noqa: S311
                await self._commit(batch, retry=retry, conflicts=conflicts + 1)
                return
            if exc.connection_invalidated and retry:
                # A pooled connection that died with the server (there is no ping per
                # checkout); the pool now reconnects. Safe to run again even if the commit
                # had gone through: the events are then found as duplicates.
                log.warning("publish.batch_retried", size=len(batch), error=type(exc).__name__)
                await self._commit(batch, retry=False)
                return
            if len(batch) > 1 and isinstance(exc, IntegrityError | DataError):
                # One publish the database refuses (e.g. its tenant was deleted a moment
                # ago) must not fail the others: publish each in its own transaction.
                log.warning("publish.batch_isolated", size=len(batch), error=type(exc).__name__)
                for request in batch:
                    await self._commit([request])
                return
            self._fail(batch, await self._explain(batch, exc))
            return
        except Exception as exc:
            self._fail(batch, exc)
            return
        for (*_, answer), result in zip(batch, results, strict=True):
            if answer.done():  # a client that went away cancelled its wait
                continue
            if isinstance(result, AppError):  # this publish alone was refused
                answer.set_exception(result)
            else:
                answer.set_result(result)

    def _fail(self, batch: list[Request], exc: Exception) -> None:
        if not isinstance(exc, TenantGone):
            log_failure(log, "publish.batch_failed", exc, size=len(batch))
        for *_, answer in batch:
            if not answer.done():
                answer.set_exception(exc)

    async def _explain(self, batch: list[Request], exc: Exception) -> Exception:
        """A lone publish refused for a tenant that no longer exists is a 401, not a 500."""
        if len(batch) != 1 or not isinstance(exc, IntegrityError):
            return exc
        tenant_id = batch[0][0]
        try:
            async with self.db.read() as session:
                await ensure_tenant(session, tenant_id=tenant_id)
        except NotFound:
            return TenantGone(tenant_id)
        except Exception:  # the database is failing: report the original error
            return exc
        return exc


class TenantGone(Unauthorized):
    """The key was authenticated (from the cache) but its tenant has been deleted since."""

    def __init__(self, tenant_id: int) -> None:
        super().__init__("invalid API key")
        self.tenant_id = tenant_id
