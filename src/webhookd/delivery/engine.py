"""The in-process delivery engine: claim due deliveries, send them concurrently, record results.

- The dispatcher claims batches with a lease (never more than ``delivery_concurrency`` in
  flight, never more than ``endpoint_concurrency`` to one endpoint) in fair order across
  tenants (delivery/fairness.py), and sleeps until woken: by a publish, by a retry falling
  due, by a saturated endpoint finishing an attempt, or by the poll timer (which also picks
  up leases left behind by a dead process).
- Each claimed delivery is one asyncio task running :func:`perform_attempt`.
- A single writer records finished attempts in batches, one transaction per batch.
A crash at any point leaves rows that become due again when their lease expires.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import os
import socket
import uuid
from typing import Any

import aiohttp
import structlog

from webhookd import metrics
from webhookd.config import Settings
from webhookd.db import Database, utcnow
from webhookd.delivery import repository
from webhookd.delivery.attempt import Job, Outcome, perform_attempt
from webhookd.errors import log_failure
from webhookd.models import DeliveryStatus
from webhookd.security import SecretBox

log = structlog.get_logger("webhookd.delivery")

WRITE_BATCH = 500
WRITE_LINGER = 0.005  # seconds the writer waits for more outcomes of attempts still out


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
        self._slot_freed = asyncio.Event()
        self._results: asyncio.Queue[Outcome] = asyncio.Queue()
        self._in_flight = 0
        self._by_endpoint: collections.Counter[int] = collections.Counter()
        self._held_back: set[int] = set()  # endpoints whose due rows the last claim left
        # False while a claim has found no due work beyond the saturated endpoints and
        # nothing new may have come since (repository.claim_due).
        self._search_past_saturated = True
        self._tenant_metrics: dict[int, tuple[Any, Any]] = {}
        self._attempt_tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="webhookd-dispatcher"),
            asyncio.create_task(self._write_loop(), name="webhookd-writer"),
        ]
        log.info("engine.started", owner=self.owner, concurrency=self.settings.delivery_concurrency)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let attempts in flight finish for ``grace`` seconds, record them,
        and hand back whatever is left so that the next process starts on it at once."""
        self._stopping = True
        self._wake.set()
        self._slot_freed.set()
        if self._attempt_tasks:
            _, pending = await asyncio.wait(self._attempt_tasks, timeout=grace)
            for task in pending:
                task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._results.join(), timeout=grace)
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        try:
            async with self.db.write() as session:
                released = await repository.release_leases(session, owner=self.owner, now=utcnow())
        except Exception:
            log.exception("engine.release_failed", owner=self.owner)
        else:
            log.info("engine.stopped", owner=self.owner, released=released)

    def wake(self) -> None:
        """New work may be due (a publish, a retry, a message): claim now, and look past
        endpoints at their cap again."""
        self._search_past_saturated = True
        self._wake.set()

    async def _claim(self, limit: int) -> list[Job]:
        """Lease up to ``limit`` due deliveries to this engine, in fair order."""
        async with self.db.write_connection() as conn:
            claim = await repository.claim_due(
                conn,
                owner=self.owner,
                now=utcnow(),
                lease=dt.timedelta(seconds=self.settings.lease_seconds),
                limit=limit,
                box=self.box,
                in_flight=self._by_endpoint,
                endpoint_cap=self.settings.endpoint_concurrency,
                search_past_saturated=self._search_past_saturated,
            )
        self._held_back = claim.held_back
        if claim.exhausted:
            self._search_past_saturated = False
        # Attempts that ended while this claim ran checked the previous claim's held-back
        # set; an endpoint of this one that already has room again must not wait for the
        # poll (with an instant receiver, all of an endpoint's attempts can end meanwhile).
        if any(self._has_room(endpoint_id) for endpoint_id in claim.held_back):
            self._wake.set()
        return claim.jobs

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
            except Exception as exc:
                log_failure(log, "engine.claim_failed", exc)
                jobs = []
                await asyncio.sleep(self.settings.poll_interval)
                self._search_past_saturated = True
            for job in jobs:
                self._start_attempt(job)  # the dispatcher does not wait for the outcome
            if len(jobs) == want:
                await asyncio.sleep(0)  # more may be due: claim again after letting tasks run
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.poll_interval)
            except TimeoutError:
                self._search_past_saturated = True  # the poll: expired leases, other writers

    def _start_attempt(self, job: Job) -> None:
        self._in_flight += 1
        self._by_endpoint[job.endpoint_id] += 1
        metrics.DELIVERIES_IN_FLIGHT.inc()
        task = asyncio.create_task(self._attempt(job))
        self._attempt_tasks.add(task)
        task.add_done_callback(self._attempt_tasks.discard)

    async def _attempt(self, job: Job) -> None:
        outcome = await perform_attempt(
            self.client,
            job,
            allow_private=self.settings.allow_private_targets,
            allow_networks=self.settings.allowed_network_list,
            body_limit=self.settings.response_body_limit,
        )
        self._endpoint_done(job.endpoint_id)
        duration, success = self._metrics_for(job.tenant_id)
        duration.observe(outcome.duration_ms / 1000)
        self._attempt_counter(job.attempt_number).inc()
        if outcome.succeeded:
            success.inc()
        else:
            metrics.DELIVERY_FAILURE.labels(
                tenant=str(job.tenant_id), reason=outcome.error_kind or ""
            ).inc()
        self._results.put_nowait(outcome)

    def _endpoint_done(self, endpoint_id: int) -> None:
        """An attempt to this endpoint is over. If the last claim left due rows of this
        endpoint behind (its cap), claim again once a quarter of its slots are free: one
        claim per quarter-cap rather than one per attempt, and the endpoint stays between
        3/4 and all of its cap in flight while it has work."""
        count = self._by_endpoint[endpoint_id] - 1
        if count <= 0:
            del self._by_endpoint[endpoint_id]
        else:
            self._by_endpoint[endpoint_id] = count
        if endpoint_id in self._held_back and self._has_room(endpoint_id):
            self._wake.set()

    def _has_room(self, endpoint_id: int) -> bool:
        """A quarter of the endpoint's slots (at least one) are free."""
        cap = self.settings.endpoint_concurrency
        return self._by_endpoint[endpoint_id] <= cap - max(1, cap // 4)

    @staticmethod
    @functools.cache
    def _attempt_counter(number: int) -> Any:
        return metrics.DELIVERY_ATTEMPTS.labels(attempt=str(number))

    def _metrics_for(self, tenant_id: int) -> tuple[Any, Any]:
        """The tenant's duration histogram and success counter (label lookups cost more
        than the updates)."""
        children = self._tenant_metrics.get(tenant_id)
        if children is None:
            tenant = str(tenant_id)
            children = (
                metrics.DELIVERY_DURATION.labels(tenant=tenant),
                metrics.DELIVERY_SUCCESS.labels(tenant=tenant),
            )
            self._tenant_metrics[tenant_id] = children
        return children

    # -- writer ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._results.get()]
            if self._in_flight > 1 and self._results.qsize() < WRITE_BATCH // 10:
                # More attempts are out: let their outcomes join this transaction. Costs
                # nothing at the receiver, and at moderate load (outcomes a few ms apart)
                # it records several per transaction instead of one.
                await asyncio.sleep(WRITE_LINGER)
            while len(batch) < WRITE_BATCH and not self._results.empty():
                batch.append(self._results.get_nowait())
            try:
                await self._record(batch)
            except Exception as exc:
                # The rows keep their lease and become due again when it expires.
                log_failure(log, "engine.record_failed", exc, count=len(batch))
            finally:
                for _ in batch:
                    self._results.task_done()
                self._in_flight -= len(batch)
                metrics.DELIVERIES_IN_FLIGHT.dec(len(batch))
                self._slot_freed.set()

    async def _record(self, batch: list[Outcome]) -> None:
        async with self.db.write_connection() as conn:
            recorded = await repository.record_outcomes(
                conn,
                owner=self.owner,
                outcomes=batch,
                policy=self.settings.retry_policy,
                now=utcnow(),
            )
        loop = asyncio.get_running_loop()
        for r in recorded:
            job = r.outcome.job
            context = {
                "delivery_id": job.delivery_id,
                "event_id": job.event_id,
                "tenant_id": job.tenant_id,
                "endpoint_id": job.endpoint_id,
                "attempt": job.attempt_number,
                "duration_ms": round(r.outcome.duration_ms, 1),
            }
            if r.status == DeliveryStatus.SUCCEEDED:
                log.info("delivery.succeeded", **context, status=r.outcome.response_status)
                continue
            bound = log.bind(**context)
            if r.status == DeliveryStatus.FAILED:
                bound.warning(
                    "delivery.retry_scheduled", error=r.outcome.summary, retry_in=r.retry_in
                )
                loop.call_later(r.retry_in or 0.0, self.wake)
            else:
                metrics.DEAD_LETTERED.labels(tenant=str(job.tenant_id)).inc()
                bound.error("delivery.dead_lettered", error=r.outcome.summary)
