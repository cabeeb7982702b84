"""Background jobs: a recovery job resends an endpoint's dead-lettered deliveries of a
time window, in batches, each batch one transaction that also advances the job's cursor.
A job is held by one runner at a time (a lease); when that process dies, another takes the
job up from its cursor once the lease ran out, so no entry is sent twice by the job and
none is skipped. A ``retry_dead_letters`` job does the same with the tenant's unresolved
entries that match a filter (the console's "retry all matching")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd import metrics
from webhookd.db import Database, utcnow
from webhookd.delivery.service import DeliveryService, Recovered
from webhookd.ids import Kind, find_by_public_id
from webhookd.jobs import repository
from webhookd.jobs.repository import JobRow
from webhookd.models import BackgroundJob, JobKind, JobStatus

__all__ = [
    "JobRow",
    "get_job",
    "list_jobs",
    "run_batch",
    "start_dead_letter_retry",
    "start_recovery",
]


async def start_recovery(
    session: AsyncSession,
    deliveries: DeliveryService,
    *,
    tenant_id: int,
    endpoint_id: int,
    endpoint_ref: str,
    since: dt.datetime,
    until: dt.datetime | None,
) -> BackgroundJob:
    """A queued recovery job of the endpoint (row id) for entries dead-lettered in
    [since, until] (until: now by default)."""
    now = utcnow()
    until = until or now
    total = await deliveries.count_to_recover(
        session, tenant_id=tenant_id, endpoint_id=endpoint_id, since=since, until=until
    )
    params = {"endpoint_id": endpoint_ref, "since": since.isoformat(), "until": until.isoformat()}
    return await repository.insert_job(
        session,
        tenant_id=tenant_id,
        kind=JobKind.RECOVER,
        endpoint_id=endpoint_id,
        params=params,
        total=total,
        now=now,
    )


async def start_dead_letter_retry(
    session: AsyncSession,
    deliveries: DeliveryService,
    *,
    tenant_id: int,
    endpoint_id: int | None,
    endpoint_ref: str | None,
    event_type: str | None,
) -> BackgroundJob:
    """A queued job that retries every unresolved dead-letter entry of the tenant (of the
    endpoint (row id), of the event type) dead-lettered until now, in batches: the DLQ's
    "retry all matching" without the 1,000 entries a bulk retry takes at once. Entries
    dead-lettered after the job was created (a retried delivery that died again) are not
    its: it ends."""
    now = utcnow()
    total = await deliveries.count_dead_letters_to_retry(
        session, tenant_id=tenant_id, endpoint_id=endpoint_id, event_type=event_type, until=now
    )
    params = {"endpoint_id": endpoint_ref, "event_type": event_type, "until": now.isoformat()}
    return await repository.insert_job(
        session,
        tenant_id=tenant_id,
        kind=JobKind.RETRY_DEAD_LETTERS,
        endpoint_id=endpoint_id,
        params=params,
        total=total,
        now=now,
    )


async def get_job(session: AsyncSession, *, tenant_id: int | None, job_id: str) -> JobRow:
    """A job by its public id (``job_…``): the tenant's, or anyone's for the admin (None)."""
    return await find_by_public_id(
        Kind.JOB,
        job_id,
        "job",
        lambda public_id: repository.get_job(session, tenant_id=tenant_id, public_id=public_id),
    )


async def list_jobs(
    session: AsyncSession, *, tenant_id: int, limit: int, before: int | None
) -> list[JobRow]:
    return await repository.list_jobs(session, tenant_id=tenant_id, limit=limit, before=before)


class LeaseLost(Exception):
    """Another runner took the job over (this one was too slow): its batch is rolled back."""


async def claim(db: Database, *, owner: str, lease: dt.timedelta) -> BackgroundJob | None:
    """Lease the next open job to ``owner`` (its values as of the claim)."""
    async with db.write() as session:
        job = await repository.claim_job(
            session,
            owner=owner,
            now=utcnow(),
            lease=lease,
            lock=db.engine.dialect.name == "postgresql",
        )
        if job is not None:
            session.expunge(job)
        return job


async def run_batch(
    db: Database,
    deliveries: DeliveryService,
    job: BackgroundJob,
    *,
    owner: str,
    batch_size: int,
    lease: dt.timedelta,
) -> bool:
    """Run the next batch of ``job`` (held by ``owner``) and record its progress in the
    same transaction; whether the job is finished. ``job`` is updated in place."""
    requeued = skipped = 0
    async with db.write() as session:
        now = utcnow()
        values: dict[str, Any]
        found = await _next_batch(session, deliveries, job, batch_size)
        if found is None:
            values = {"status": JobStatus.FAILED, "error": f"unknown job kind {job.kind!r}"}
            finished = True
        else:
            requeued, skipped = found.requeued, found.handled - found.requeued
            values = {
                "done": job.done + requeued,
                "failed": job.failed + skipped,
                "cursor": found.last_entry,
            }
            finished = found.handled < batch_size
            if finished:
                values |= {
                    "status": JobStatus.SUCCEEDED,
                    "total": values["done"] + values["failed"],
                }
        if finished:
            values |= {"finished_at": now, "lease_owner": None, "lease_expires_at": None}
        else:
            values["lease_expires_at"] = now + lease
        values["updated_at"] = now
        if not await repository.advance_job(session, job_id=job.id, owner=owner, values=values):
            raise LeaseLost(job.id)
    for key, value in values.items():
        setattr(job, key, value)
    metrics.JOB_ITEMS.labels(kind=job.kind, result="requeued").inc(requeued)
    metrics.JOB_ITEMS.labels(kind=job.kind, result="skipped").inc(skipped)
    return finished


async def _next_batch(
    session: AsyncSession, deliveries: DeliveryService, job: BackgroundJob, limit: int
) -> Recovered | None:
    """Send the next batch of the job's entries again (None: a job of no known kind)."""
    if job.kind == JobKind.RECOVER and job.endpoint_id is not None:
        return await deliveries.recover_batch(
            session,
            tenant_id=job.tenant_id,
            endpoint_id=job.endpoint_id,
            since=dt.datetime.fromisoformat(job.params["since"]),
            until=dt.datetime.fromisoformat(job.params["until"]),
            after=job.cursor,
            limit=limit,
        )
    if job.kind == JobKind.RETRY_DEAD_LETTERS:
        event_type = job.params.get("event_type")
        return await deliveries.retry_dead_letters_batch(
            session,
            tenant_id=job.tenant_id,
            endpoint_id=job.endpoint_id,
            event_type=event_type if isinstance(event_type, str) else None,
            until=dt.datetime.fromisoformat(job.params["until"]),
            after=job.cursor,
            limit=limit,
        )
    return None


async def fail(db: Database, job: BackgroundJob, *, owner: str, error: str) -> None:
    """Stop the job for good with ``error`` (it kept failing)."""
    async with db.write() as session:
        now = utcnow()
        values = {
            "status": JobStatus.FAILED,
            "error": error[:1000],
            "finished_at": now,
            "updated_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        await repository.advance_job(session, job_id=job.id, owner=owner, values=values)
