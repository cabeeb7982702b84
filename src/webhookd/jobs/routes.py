"""Sending again: replay one event, recover an endpoint (a background job), follow a job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from webhookd.api.deps import (
    DeliveriesDep,
    PathTenantDep,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
    TenantDep,
    WriteSessionDep,
)
from webhookd.api.route import OrjsonRoute
from webhookd.db import after_commit
from webhookd.delivery.schemas import ReplayCreate, ReplayedRead, ReplayResult
from webhookd.endpoint.service import get_endpoint
from webhookd.event.schemas import EventIdPath
from webhookd.event.service import get_event
from webhookd.ids import Kind, format_id
from webhookd.jobs import service
from webhookd.jobs.schemas import JobRead, RecoverCreate
from webhookd.schemas import CursorQuery, Page, PublicIdPath, decode_cursor, next_cursor

router = APIRouter(tags=["jobs"], route_class=OrjsonRoute)


@router.post(
    "/api/v1/events/{event_id}/replay",
    status_code=202,
    response_model=ReplayResult,
    tags=["events"],
)
async def replay_event(
    event_id: EventIdPath,
    tenant: TenantDep,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
    data: ReplayCreate | None = None,
) -> ReplayResult:
    """Deliver the event again: each of its deliveries that finished (succeeded or dead)
    starts a fresh cycle of attempts, its earlier attempts kept; a delivery still under way
    is left as it is. `endpoint_ids` limits the replay to those endpoints, and sends the
    event to one that never had it (e.g. an endpoint created since)."""
    event = await get_event(session, tenant_id=tenant.id, event_id=event_id)
    chosen = None
    if data is not None and data.endpoint_ids is not None:
        chosen = []
        for ref in data.endpoint_ids:
            endpoint = await get_endpoint(session, tenant_id=tenant.id, endpoint_id=ref)
            chosen.append((endpoint.id, endpoint.public_id))
    replayed = await deliveries.replay_event(
        session, tenant_id=tenant.id, event_pk=event.id, endpoint_ids=chosen
    )
    return ReplayResult(
        event_id=event.event_id,
        deliveries=[
            ReplayedRead(
                delivery_id=format_id(Kind.DELIVERY, r.delivery_id),
                endpoint_id=format_id(Kind.ENDPOINT, r.endpoint_id),
                outcome=r.outcome,
            )
            for r in replayed
        ],
    )


@router.post(
    "/api/v1/tenants/{tenant_id}/endpoints/{endpoint_id}/recover",
    status_code=202,
    response_model=JobRead,
    tags=["endpoints"],
)
async def recover_endpoint(
    tenant: PathTenantDep,
    endpoint_id: PublicIdPath,
    data: RecoverCreate,
    session: WriteSessionDep,
    deliveries: DeliveriesDep,
    runtime: RuntimeDep,
) -> JobRead:
    """Resend every delivery of the endpoint that was dead-lettered between `since` and
    `until` (default: now) and is still unresolved, each in a fresh cycle of attempts. Runs
    as a background job, in batches: follow it with `GET /api/v1/jobs/{id}`. Running the
    same recovery twice sends nothing twice: an entry sent again is resolved."""
    endpoint = await get_endpoint(session, tenant_id=tenant.id, endpoint_id=endpoint_id)
    job = await service.start_recovery(
        session,
        deliveries,
        tenant_id=tenant.id,
        endpoint_id=endpoint.id,
        endpoint_ref=format_id(Kind.ENDPOINT, endpoint.public_id),
        since=data.since,
        until=data.until,
    )
    if runtime.jobs is not None:
        after_commit(session, runtime.jobs.wake)
    return JobRead.of(job, tenant.ref)


@router.get("/api/v1/jobs/{job_id}", response_model=JobRead)
async def get_job(job_id: PublicIdPath, principal: PrincipalDep, session: SessionDep) -> JobRead:
    """A job's progress: `status`, `total`, `done`, `failed` (the tenant's key, or the
    admin key for any tenant's job)."""
    tenant_id = None if principal.tenant is None else principal.tenant.id
    job, tenant = await service.get_job(session, tenant_id=tenant_id, job_id=job_id)
    return JobRead.of(job, format_id(Kind.TENANT, tenant))


@router.get("/api/v1/jobs", response_model=Page[JobRead])
async def list_jobs(
    tenant: TenantDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorQuery = None,
) -> Page[JobRead]:
    """The tenant's jobs, newest first."""
    rows = await service.list_jobs(
        session, tenant_id=tenant.id, limit=limit, before=decode_cursor(cursor)
    )
    return Page(
        items=[JobRead.of(job, tenant.ref) for job, _ in rows],
        next_cursor=next_cursor([job.id for job, _ in rows], limit),
    )
