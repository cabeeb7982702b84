"""The in-process delivery engine: claim due deliveries, send them concurrently, record results.

- The dispatcher claims batches with a lease (never more than ``delivery_concurrency`` in
  flight) and sleeps until woken: by a publish, by a retry falling due, or by the poll timer
  (which also picks up leases left behind by a dead process).
- Each claimed delivery is one asyncio task running :func:`perform_attempt`.
- A single writer records finished attempts in batches, one transaction per batch.
A crash at any point leaves rows that become due again when their lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog

from webhookd import metrics
from webhookd.config import Settings
from webhookd.db import Database, utcnow
from webhookd.delivery import repository
from webhookd.delivery.attempt import Job, Outcome, perform_attempt
from webhookd.models import DeliveryStatus
from webhookd.security import SecretBox

log = structlog.get_logger("webhookd.delivery")

WRITE_BATCH = 500


def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DeliveryEngine:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        client: aiohttp.ClientSession,
        box: SecretBox,
    ) -> None:
        self.settings = settings
        self.box = box
        self.db = db
        self.client = client
        self.owner = worker_id()
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()  # for the dispatcher
        self._claim_slot_freed = asyncio.Event()  # for the claimer of requested deliveries
        self._results: asyncio.Queue[Outcome] = asyncio.Queue()
        self._in_flight = 0
        self._attempt_tasks: set[asyncio.Task[None]] = set()
        self._recorded: dict[int, asyncio.Future[None]] = {}  # delivery id -> written
        self._claim_requests: list[tuple[list[int], asyncio.Future[Any]]] = []
        self._claim_wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="webhookd-dispatcher"),
            asyncio.create_task(self._write_loop(), name="webhookd-writer"),
            asyncio.create_task(self._claim_requested_loop(), name="webhookd-claimer"),
        ]
        log.info("engine.started", owner=self.owner, concurrency=self.settings.delivery_concurrency)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let attempts in flight finish for ``grace`` seconds, record them,
        and hand back whatever is left so that the next process starts on it at once."""
        self._stopping = True
        self._wake.set()
        self._slot_freed.set()
        self._claim_slot_freed.set()
        if self._attempt_tasks:
            _, pending = await asyncio.wait(self._attempt_tasks, timeout=grace)
            for task in pending:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._results.join(), timeout=grace)
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for waiting in self._recorded.values():  # outcomes that will not be written here
            waiting.cancel()
        self._recorded.clear()
        for _, claimed in self._claim_requests:
            claimed.cancel()
        self._claim_requests.clear()
        try:
            async with self.db.write() as session:
                released = await repository.release_leases(session, owner=self.owner, now=utcnow())
        except Exception:
            log.exception("engine.release_failed", owner=self.owner)
        else:
            log.info("engine.stopped", owner=self.owner, released=released)

    def wake(self) -> None:
        self._wake.set()

    async def deliver_now(self, delivery_ids: Sequence[int]) -> int:
        """Claim these deliveries if they are due and unclaimed, deliver them, and return once
        their outcomes are recorded (the broker acknowledges the task after that). Returns how
        many were delivered here; the rest were done or are held by another worker's lease.

        Requests that arrive while a claim is running are claimed together in the next one,
        so many small tasks cost a few transactions, not one each."""
        claimed: asyncio.Future[list[asyncio.Future[None]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._claim_requests.append((list(delivery_ids), claimed))
        self._claim_wake.set()
        recorded = await claimed
        await asyncio.gather(*recorded)
        return len(recorded)

    def _take_claim_requests(self, free: int) -> list[tuple[list[int], asyncio.Future[Any]]]:
        """The oldest waiting requests that fit in ``free`` slots (at least one request)."""
        batch: list[tuple[list[int], asyncio.Future[Any]]] = []
        taken = 0
        while self._claim_requests and (
            not batch or taken + len(self._claim_requests[0][0]) <= free
        ):
            request = self._claim_requests.pop(0)
            batch.append(request)
            taken += len(request[0])
        return batch

    async def _claim(self, limit: int, ids: Sequence[int] | None = None) -> list[Job]:
        """Lease up to ``limit`` due deliveries (among ``ids`` if given) to this engine."""
        async with self.db.write() as session:
            return await repository.claim_due(
                session,
                owner=self.owner,
                now=utcnow(),
                lease=dt.timedelta(seconds=self.settings.lease_seconds),
                limit=limit,
                box=self.box,
                ids=ids,
            )

    async def _claim_requested_loop(self) -> None:
        while True:
            await self._claim_wake.wait()
            self._claim_wake.clear()
            while self._claim_requests:
                free = self.settings.delivery_concurrency - self._in_flight
                if free <= 0:  # as many in flight as allowed: wait for the writer
                    self._claim_slot_freed.clear()
                    await self._claim_slot_freed.wait()
                    continue
                batch = self._take_claim_requests(free)
                ids = [i for request_ids, _ in batch for i in request_ids]
                try:
                    jobs = await self._claim(len(ids), ids=ids)
                except Exception as exc:
                    log.exception("engine.claim_failed", requested=len(ids))
                    for _, claimed in batch:
                        claimed.set_exception(exc)
                    continue
                by_id = {job.delivery_id: job for job in jobs}
                for request_ids, claimed in batch:
                    claimed.set_result(
                        [self._start_attempt(by_id[i]) for i in request_ids if i in by_id]
                    )

    # -- dispatcher --------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            free = self.settings.delivery_concurrency - self._in_flight
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            want = min(free, self.settings.claim_batch_size)
            self._wake.clear()
            try:
                jobs = await self._claim(want)
            except Exception:
                log.exception("engine.claim_failed")
                jobs = []
                await asyncio.sleep(self.settings.poll_interval)
            for job in jobs:
                self._start_attempt(job)  # the dispatcher does not wait for the outcome
            if len(jobs) == want:
                await asyncio.sleep(0)  # more may be due: claim again after letting tasks run
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_interval)

    def _start_attempt(self, job: Job) -> asyncio.Future[None]:
        """Start one attempt; the returned future resolves once its outcome is written."""
        self._in_flight += 1
        metrics.DELIVERIES_IN_FLIGHT.inc()
        recorded = asyncio.get_running_loop().create_future()
        self._recorded[job.delivery_id] = recorded
        task = asyncio.create_task(self._attempt(job))
        self._attempt_tasks.add(task)
        task.add_done_callback(self._attempt_tasks.discard)
        return recorded

    async def _attempt(self, job: Job) -> None:
        outcome = await perform_attempt(
            self.client,
            job,
            allow_private=self.settings.allow_private_targets,
            allow_networks=self.settings.allowed_network_list,
            body_limit=self.settings.response_body_limit,
        )
        tenant = str(job.tenant_id)
        metrics.DELIVERY_DURATION.labels(tenant=tenant).observe(outcome.duration_ms / 1000)
        metrics.DELIVERY_ATTEMPTS.labels(attempt=str(job.attempt_number)).inc()
        if outcome.succeeded:
            metrics.DELIVERY_SUCCESS.labels(tenant=tenant).inc()
        else:
            metrics.DELIVERY_FAILURE.labels(tenant=tenant, reason=outcome.error_kind or "").inc()
        self._results.put_nowait(outcome)

    # -- writer ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._results.get()]
            while len(batch) < WRITE_BATCH and not self._results.empty():
                batch.append(self._results.get_nowait())
            try:
                await self._record(batch)
            except Exception:
                # The rows keep their lease and become due again when it expires.
                log.exception("engine.record_failed", count=len(batch))
            finally:
                for outcome in batch:
                    self._results.task_done()
                    done = self._recorded.pop(outcome.job.delivery_id, None)
                    if done is not None and not done.done():
                        done.set_result(None)
                self._in_flight -= len(batch)
                metrics.DELIVERIES_IN_FLIGHT.dec(len(batch))
                self._slot_freed.set()
                self._claim_slot_freed.set()

    async def _record(self, batch: list[Outcome]) -> None:
        async with self.db.write() as session:
            recorded = await repository.record_outcomes(
                session,
                owner=self.owner,
                outcomes=batch,
                policy=self.settings.retry_policy,
                now=utcnow(),
            )
        loop = asyncio.get_running_loop()
        for r in recorded:
            job = r.outcome.job
            bound = log.bind(
                delivery_id=job.delivery_id,
                event_id=job.event_id,
                tenant_id=job.tenant_id,
                endpoint_id=job.endpoint_id,
                attempt=job.attempt_number,
                duration_ms=round(r.outcome.duration_ms, 1),
            )
            if r.status == DeliveryStatus.SUCCEEDED:
                bound.info("delivery.succeeded", status=r.outcome.response_status)
            elif r.status == DeliveryStatus.FAILED:
                bound.warning(
                    "delivery.retry_scheduled", error=r.outcome.summary, retry_in=r.retry_in
                )
                loop.call_later(r.retry_in or 0.0, self._wake.set)
            else:
                metrics.DEAD_LETTERED.labels(tenant=str(job.tenant_id)).inc()
                bound.error("delivery.dead_lettered", error=r.outcome.summary)
