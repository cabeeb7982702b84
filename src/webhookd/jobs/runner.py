"""The job runner of a delivering process (the embedded API, each Celery worker): takes
up background jobs one at a time and runs them batch by batch, and runs the retention
purge every ``WEBHOOKD_PURGE_INTERVAL`` seconds.

Jobs wait in the database: a runner finds them when woken (a job created in this process)
or at its poll (``WEBHOOKD_POLL_INTERVAL``), and holds one with a lease that each batch
renews; a runner that dies leaves a job that another takes up when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import structlog

from webhookd.config import Settings
from webhookd.db import Database, utcnow
from webhookd.delivery.engine import worker_id
from webhookd.delivery.service import DeliveryService
from webhookd.delivery.store import DeliveryStore
from webhookd.jobs import retention, service
from webhookd.logging import log_failure
from webhookd.models import BackgroundJob

log = structlog.get_logger("webhookd.jobs")

MAX_ERRORS = 5  # batches of one job failing in a row before the job is marked failed
FIRST_PURGE_DELAY = 30.0  # seconds after start: the process is up before it purges


class JobRunner:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: DeliveryStore,
        deliveries: DeliveryService,
        *,
        first_purge_delay: float = FIRST_PURGE_DELAY,
    ) -> None:
        self.settings = settings
        self.db = db
        self.store = store
        self.deliveries = deliveries
        self.owner = worker_id()
        self.lease = dt.timedelta(seconds=settings.job_lease_seconds)
        self._first_purge_delay = min(first_purge_delay, settings.purge_interval)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._job_loop(), name="webhookd-jobs"),
            asyncio.create_task(self._purge_loop(), name="webhookd-retention"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def wake(self) -> None:
        """A job was created: look for it now."""
        self._wake.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def _job_loop(self) -> None:
        while True:
            try:
                job = await service.claim(self.db, owner=self.owner, lease=self.lease)
            except Exception as exc:  # the database is away: try again at the next poll
                log_failure(log, "jobs.claim_failed", exc)
                job = None
            if job is None:
                await self._sleep(self.settings.poll_interval)
                continue
            await self._run(job)

    async def _run(self, job: BackgroundJob) -> None:
        log.info("job.started", job_id=job.id, kind=job.kind, cursor=job.cursor)
        errors = 0
        while True:
            try:
                finished = await service.run_batch(
                    self.db,
                    self.deliveries,
                    job,
                    owner=self.owner,
                    batch_size=self.settings.job_batch_size,
                    lease=self.lease,
                )
            except service.LeaseLost:
                log.warning("job.lease_lost", job_id=job.id)
                return
            except Exception as exc:
                errors += 1
                log_failure(log, "job.batch_failed", exc, job_id=job.id, errors=errors)
                if errors >= MAX_ERRORS:
                    with contextlib.suppress(Exception):
                        await service.fail(self.db, job, owner=self.owner, error=str(exc))
                    return
                await asyncio.sleep(self.settings.poll_interval)
                continue
            errors = 0
            if finished:
                log.info("job.finished", job_id=job.id, status=job.status, done=job.done)
                return
            await asyncio.sleep(self.settings.job_batch_pause)

    async def _purge_loop(self) -> None:
        await asyncio.sleep(self._first_purge_delay)
        while True:
            try:
                await retention.purge(self.db, self.store, self.settings, now=utcnow())
            except Exception as exc:
                log_failure(log, "retention.purge_failed", exc)
            await asyncio.sleep(self.settings.purge_interval)
