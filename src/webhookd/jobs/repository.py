"""Reads and writes of background jobs. A job is its tenant's (``get_job`` and the listing
take the tenant); the runner claims and advances jobs of every tenant by their lease."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.db import cross_tenant
from webhookd.models import BackgroundJob, JobStatus, Tenant

OPEN = (JobStatus.QUEUED, JobStatus.RUNNING)


async def insert_job(
    session: AsyncSession,
    *,
    tenant_id: int,
    kind: str,
    endpoint_id: int | None,
    params: dict[str, Any],
    total: int,
    now: dt.datetime,
) -> BackgroundJob:
    job = BackgroundJob(
        tenant_id=tenant_id,
        kind=kind,
        endpoint_id=endpoint_id,
        params=params,
        status=JobStatus.QUEUED,
        total=total,
        done=0,
        failed=0,
        cursor=0,
        created_at=now,
        updated_at=now,
    )
    session.add(job)
    await session.flush()
    return job


JobRow = tuple[BackgroundJob, uuid.UUID]  # a job and its tenant's public id


def _jobs() -> Select[BackgroundJob, uuid.UUID]:
    return select(BackgroundJob, Tenant.public_id).join(
        Tenant, Tenant.id == BackgroundJob.tenant_id
    )


async def get_job(
    session: AsyncSession, *, tenant_id: int | None, public_id: uuid.UUID
) -> JobRow | None:
    """A job by its public id: the tenant's (``tenant_id``), or anyone's (None: the admin)."""
    query = _jobs().where(BackgroundJob.public_id == public_id)
    if tenant_id is not None:
        query = query.where(BackgroundJob.tenant_id == tenant_id)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def list_jobs(
    session: AsyncSession, *, tenant_id: int, limit: int, before: int | None
) -> list[JobRow]:
    """The tenant's jobs, newest first."""
    query = _jobs().where(BackgroundJob.tenant_id == tenant_id)
    if before is not None:
        query = query.where(BackgroundJob.id < before)
    rows = await session.execute(query.order_by(BackgroundJob.id.desc()).limit(limit))
    return [(job, tenant) for job, tenant in rows]


@cross_tenant("the job runner takes up the jobs of every tenant")
async def claim_job(
    session: AsyncSession, *, owner: str, now: dt.datetime, lease: dt.timedelta, lock: bool
) -> BackgroundJob | None:
    """Lease the oldest open job that no live runner holds (queued, or running with an
    expired lease: its runner died) to ``owner``."""
    query = (
        select(BackgroundJob)
        .where(
            BackgroundJob.status.in_(OPEN),
            or_(BackgroundJob.lease_expires_at.is_(None), BackgroundJob.lease_expires_at < now),
        )
        .order_by(BackgroundJob.id)
        .limit(1)
    )
    if lock:
        query = query.with_for_update(skip_locked=True)
    job = (await session.scalars(query)).first()
    if job is None:
        return None
    job.status = JobStatus.RUNNING
    job.lease_owner = owner
    job.lease_expires_at = now + lease
    job.started_at = job.started_at or now
    job.updated_at = now
    await session.flush()
    return job


@cross_tenant("the job runner advances the job it holds, by its lease")
async def advance_job(
    session: AsyncSession,
    *,
    job_id: int,
    owner: str,
    values: dict[str, Any],
) -> bool:
    """Write a running job's progress if ``owner`` still holds it; whether it did."""
    result = await session.execute(
        update(BackgroundJob)
        .where(
            BackgroundJob.id == job_id,
            BackgroundJob.lease_owner == owner,
            BackgroundJob.status == JobStatus.RUNNING,
        )
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


@cross_tenant("the retention purge groups every tenant by its retention")
async def retention_values(session: AsyncSession) -> list[int | None]:
    """The distinct ``retention_days`` of the tenants (None: the default)."""
    return list(await session.scalars(select(Tenant.retention_days).distinct()))


@cross_tenant("a count of the whole deployment's open jobs, for the runner's idle check")
async def count_open(session: AsyncSession) -> int:
    query = select(func.count()).select_from(BackgroundJob).where(BackgroundJob.status.in_(OPEN))
    return int(await session.scalar(query) or 0)
