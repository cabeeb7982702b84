"""Sending again through the Svix API: resend a message to one endpoint (the native replay
of one event to chosen endpoints) and recover an endpoint (the native recovery job, which
Svix calls a background task and webhookd follows at ``/api/v1/jobs/{id}``)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from webhookd.api.deps import DeliveriesDep, RuntimeDep, SessionDep, WriteSessionDep
from webhookd.db import after_commit
from webhookd.endpoint import service as endpoints
from webhookd.event import service as events
from webhookd.ids import Kind, format_id
from webhookd.jobs import service as jobs
from webhookd.models import BackgroundJob, JobStatus
from webhookd.schemas import PublicIdPath
from webhookd.svix.auth import AppDep, IdempotencyDep, SvixPrincipalDep
from webhookd.svix.errors import SvixRoute
from webhookd.svix.schemas import (
    BackgroundTaskOut,
    BackgroundTaskStatus,
    EmptyResponse,
    RecoverIn,
)

router = APIRouter(prefix="/api/v1", tags=["svix"], route_class=SvixRoute)

_STATUS = {
    JobStatus.QUEUED: BackgroundTaskStatus.RUNNING,
    JobStatus.RUNNING: BackgroundTaskStatus.RUNNING,
    JobStatus.SUCCEEDED: BackgroundTaskStatus.FINISHED,
    JobStatus.FAILED: BackgroundTaskStatus.FAILED,
}


def task_out(job: BackgroundJob) -> BackgroundTaskOut:
    return BackgroundTaskOut(
        id=format_id(Kind.JOB, job.public_id),
        status=_STATUS[JobStatus(job.status)],
        data={"messagesSent": job.done, "messagesFailed": job.failed, "total": job.total},
        updated_at=job.updated_at,
    )


@router.post(
    "/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    status_code=202,
    response_model=EmptyResponse,
)
async def resend(
    app: AppDep,
    msg_id: PublicIdPath,
    endpoint_id: PublicIdPath,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
    idem: IdempotencyDep,
) -> Response:
    """Send the message to the endpoint again (a fresh cycle of attempts, the earlier ones
    kept), or for the first time if it never had it; one still under way is left as it is."""
    if (replay := await idem.replay(session)) is not None:
        return replay
    event = await events.get_event(session, tenant_id=app.id, event_id=msg_id)
    endpoint = await endpoints.get_endpoint(session, tenant_id=app.id, endpoint_id=endpoint_id)
    await deliveries.replay_event(
        session,
        tenant_id=app.id,
        event_pk=event.id,
        endpoint_ids=[(endpoint.id, endpoint.public_id)],
    )
    return await idem.remember(session, 202, EmptyResponse())


@router.post(
    "/app/{app_id}/endpoint/{endpoint_id}/recover",
    status_code=202,
    response_model=BackgroundTaskOut,
)
async def recover(
    app: AppDep,
    endpoint_id: PublicIdPath,
    data: RecoverIn,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
    runtime: RuntimeDep,
    idem: IdempotencyDep,
) -> Response:
    """Resend the endpoint's messages that failed (were dead-lettered) since `since` (until
    `until`, default now) and are still unresolved: a background job, in batches."""
    if (replay := await idem.replay(session)) is not None:
        return replay
    endpoint = await endpoints.get_endpoint(session, tenant_id=app.id, endpoint_id=endpoint_id)
    job = await jobs.start_recovery(
        session,
        deliveries,
        tenant_id=app.id,
        endpoint_id=endpoint.id,
        endpoint_ref=format_id(Kind.ENDPOINT, endpoint.public_id),
        since=data.since,
        until=data.until,
    )
    if runtime.jobs is not None:
        after_commit(session, runtime.jobs.wake)
    return await idem.remember(session, 202, task_out(job))


@router.get("/background-task/{task_id}", response_model=BackgroundTaskOut)
async def get_background_task(
    task_id: PublicIdPath, principal: SvixPrincipalDep, session: SessionDep
) -> BackgroundTaskOut:
    """A recovery's progress (the admin key sees every application's, a tenant's key its
    own): `data.messagesSent` counts the deliveries sent again."""
    tenant_id = None if principal.tenant is None else principal.tenant.id
    job, _ = await jobs.get_job(session, tenant_id=tenant_id, job_id=task_id)
    return task_out(job)
