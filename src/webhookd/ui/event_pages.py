"""The operator console's event log (search, an event with its deliveries, attempts and
the requests as sent, replay), dead-letter queue (retry, resolve, "retry all matching" as
a background job with its progress) and live view of the newest deliveries of every
tenant. Pages call the same services as the API (no SQL here); every change is a POSTed
form checked for its CSRF token. Everything reads without JavaScript; htmx only refreshes
a job's progress and the live table in place."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from webhookd.api.deps import (
    DeliveriesDep,
    RuntimeDep,
    SecretsDep,
    SessionDep,
    WriteSessionDep,
    tenant_named,
)
from webhookd.db import after_commit
from webhookd.delivery.attempt import build_body, build_headers
from webhookd.delivery.headers import REDACTED, redact
from webhookd.delivery.http import USER_AGENT
from webhookd.delivery.job import Job
from webhookd.delivery.schemas import DeadLetterRead, DeliveryDetail, DeliveryRow
from webhookd.delivery.service import DeliveryService, LiveDelivery
from webhookd.endpoint.service import endpoint_headers, endpoint_row_id, get_endpoint
from webhookd.endpoint.service import list_endpoints as endpoints_of
from webhookd.errors import NotFound
from webhookd.event.schemas import EventId, EventIdPath, EventRead
from webhookd.event.service import get_event, search_events
from webhookd.ids import Kind, format_id
from webhookd.jobs import service as jobs
from webhookd.jobs.schemas import JobRead, as_utc
from webhookd.models import Attempt, DeliveryStatus, Event, JobKind, JobStatus
from webhookd.schemas import MAX_ID, EventType, PublicIdPath
from webhookd.security import ServerSecrets
from webhookd.tenant import service as tenants
from webhookd.tenant.keycache import AuthTenant
from webhookd.ui.pages import form_errors, form_values, see_other
from webhookd.ui.session import ConsoleDep, FormDep
from webhookd.ui.templating import event_path, render

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE_SIZE = 50
LIVE_SIZE = 50


async def _tenant(runtime: Any, session: AsyncSession, tenant_id: str) -> tuple[AuthTenant, str]:
    """The tenant a page names (404 if none), and its name."""
    ref = await tenant_named(runtime, tenant_id)
    row = await tenants.get_tenant(session, tenant_id=ref.id)
    return ref, row.name


def _tenant_view(ref: AuthTenant, name: str) -> dict[str, str]:
    return {"id": ref.ref, "name": name}


# -- the event log -------------------------------------------------------------------------

SEARCH_FIELDS = ("event_id", "event_type", "status", "since", "until", "before")


class EventSearch(BaseModel):
    """The search form of the event log; times without an offset are UTC."""

    model_config = ConfigDict(extra="ignore")

    event_id: EventId | None = None
    event_type: EventType | None = None
    status: DeliveryStatus | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before: int | None = Field(default=None, ge=0, le=MAX_ID)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else as_utc(value)

    @field_validator("until")
    @classmethod
    def _ordered(cls, value: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        since = info.data.get("since")
        if value is not None and since is not None and value < since:
            raise ValueError("must not be before since")
        return value

    def query(self, **changes: Any) -> dict[str, str]:
        """The search as query parameters (the times as a datetime-local input shows them)."""
        values = self.model_dump() | changes
        found: dict[str, str] = {}
        for name in SEARCH_FIELDS:
            value = values.get(name)
            if isinstance(value, dt.datetime):
                found[name] = local_input(value)
            elif value is not None:
                found[name] = str(value)
        return found


def local_input(value: dt.datetime) -> str:
    """A moment as the value of a ``datetime-local`` input (UTC)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


@router.get("/tenants/{tenant_id}/events")
async def event_log(
    request: Request,
    tenant_id: str,
    console: ConsoleDep,
    session: SessionDep,
    runtime: RuntimeDep,
    deliveries: DeliveriesDep,
) -> Response:
    ref, name = await _tenant(runtime, session, tenant_id)
    values = form_values(request.query_params, SEARCH_FIELDS)
    context: dict[str, Any] = {
        "tenant": _tenant_view(ref, name),
        "statuses": [s.value for s in DeliveryStatus],
        "events": [],
        "next_url": None,
        "first_url": None,
    }
    try:
        search = EventSearch.model_validate(values)
    except ValidationError as exc:
        return render(
            request,
            "event_log.html",
            csrf=console.csrf,
            status_code=422,
            values=values,
            errors=form_errors(exc),
            **context,
        )
    found = await search_events(
        session,
        deliveries=deliveries,
        tenant_id=ref.id,
        event_id=search.event_id,
        event_type=search.event_type,
        status=search.status,
        since=search.since,
        until=search.until,
        limit=PAGE_SIZE,
        before=search.before,
    )
    base = f"/ui/tenants/{ref.ref}/events"
    if found.before is not None:
        context["next_url"] = f"{base}?{urlencode(search.query(before=found.before))}"
    if search.before is not None:
        context["first_url"] = f"{base}?{urlencode(search.query(before=None))}"
    context["events"] = [
        {**EventRead.of(e).model_dump(), "url": event_path(ref.ref, e.event_id)}
        for e in found.events
    ]
    return render(
        request,
        "event_log.html",
        csrf=console.csrf,
        values=search.query(before=None),
        errors={},
        searched=bool(search.query(before=None)),
        **context,
    )


# -- one event -----------------------------------------------------------------------------

# Any well-formed secret: the signatures it makes are replaced by REDACTED.
_REDACTING_SECRET = "whsec_" + base64.b64encode(bytes(32)).decode()
_SIGNATURES = ("X-Webhook-Signature", "webhook-signature")


class SentRequest(NamedTuple):
    """A delivery's request as webhookd sends it, signatures and secrets redacted."""

    url: str
    headers: list[tuple[str, str]]
    body: str
    timestamp_note: str


def request_as_sent(
    event: Event, row: DeliveryRow, attempts: list[Attempt], url: str, custom: dict[str, str] | None
) -> SentRequest:
    """The body (built by the very function the sender uses) and headers of the delivery's
    latest attempt (its next one if none was made yet)."""
    delivery = row[0]
    last = next((a for a in reversed(attempts) if a.cycle == delivery.cycle), None)
    job = Job(
        delivery_id=delivery.id,
        tenant_id=delivery.tenant_id,
        endpoint_id=delivery.endpoint_id,
        event_pk=event.id,
        url=url,
        secrets=(_REDACTING_SECRET,),
        event_id=event.event_id,
        event_type=event.event_type,
        payload=event.payload,
        created_at=event.created_at,
        attempt_number=last.attempt_number if last else delivery.attempt_count + 1,
        cycle=delivery.cycle,
        message_id=format_id(Kind.DELIVERY, delivery.public_id),
        headers=redact(custom),
    )
    body = build_body(job)
    if last is not None:
        timestamp = int(last.started_at.timestamp())
        note = "webhook-timestamp: when the latest attempt started"
    else:
        timestamp = int(time.time())
        note = "webhook-timestamp: set when the attempt is made (now, for this preview)"
    headers = {"User-Agent": USER_AGENT, **build_headers(job, body, timestamp)}
    for name in _SIGNATURES:
        headers[name] = REDACTED
    return SentRequest(url, list(headers.items()), body.decode(), note)


async def _event_page(
    request: Request,
    *,
    csrf: str,
    session: AsyncSession,
    deliveries: DeliveryService,
    secrets: ServerSecrets,
    ref: AuthTenant,
    name: str,
    event_id: str,
    notice: str | None = None,
) -> HTMLResponse:
    event = await get_event(session, tenant_id=ref.id, event_id=event_id)
    rows = await deliveries.deliveries_of_event(session, tenant_id=ref.id, event_pk=event.id)
    endpoints: dict[str, tuple[str, dict[str, str] | None]] = {}
    shown = []
    for row, attempts in rows:
        endpoint_ref = format_id(Kind.ENDPOINT, row[3])
        if endpoint_ref not in endpoints:
            endpoint = await get_endpoint(session, tenant_id=ref.id, endpoint_id=endpoint_ref)
            endpoints[endpoint_ref] = (endpoint.url, endpoint_headers(endpoint, secrets))
        url, custom = endpoints[endpoint_ref]
        shown.append(
            {
                "delivery": DeliveryDetail.with_attempts(row, attempts),
                "url": url,
                "request": request_as_sent(event, row, attempts, url, custom),
            }
        )
    return render(
        request,
        "event_detail.html",
        csrf=csrf,
        tenant=_tenant_view(ref, name),
        event=EventRead.of(event),
        url=event_path(ref.ref, event.event_id),
        payload=json.dumps(event.payload, indent=2, ensure_ascii=False),
        deliveries=shown,
        notice=notice,
    )


@router.get("/tenants/{tenant_id}/events/{event_id}")
async def event_page(
    request: Request,
    tenant_id: str,
    event_id: EventIdPath,
    console: ConsoleDep,
    session: SessionDep,
    runtime: RuntimeDep,
    deliveries: DeliveriesDep,
    secrets: SecretsDep,
) -> Response:
    ref, name = await _tenant(runtime, session, tenant_id)
    return await _event_page(
        request,
        csrf=console.csrf,
        session=session,
        deliveries=deliveries,
        secrets=secrets,
        ref=ref,
        name=name,
        event_id=event_id,
    )


OUTCOMES = {"restarted": "sent again", "created": "new", "in_progress": "still under way"}


@router.post("/tenants/{tenant_id}/events/{event_id}/replay")
async def replay_event(
    request: Request,
    tenant_id: str,
    event_id: EventIdPath,
    _: FormDep,
    console: ConsoleDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    deliveries: DeliveriesDep,
    secrets: SecretsDep,
) -> Response:
    ref, name = await _tenant(runtime, session, tenant_id)
    event = await get_event(session, tenant_id=ref.id, event_id=event_id)
    replayed = await deliveries.replay_event(
        session, tenant_id=ref.id, event_pk=event.id, endpoint_ids=None
    )
    if replayed:
        counts = {label: 0 for label in OUTCOMES.values()}
        for item in replayed:
            counts[OUTCOMES[item.outcome]] += 1
        notice = "Replayed: " + ", ".join(f"{n} {label}" for label, n in counts.items() if n)
        notice += "." if counts["sent again"] else " (nothing had finished: nothing sent again)."
    else:
        notice = "Nothing to replay: the event has no delivery."
    return await _event_page(
        request,
        csrf=console.csrf,
        session=session,
        deliveries=deliveries,
        secrets=secrets,
        ref=ref,
        name=name,
        event_id=event.event_id,
        notice=notice,
    )


# -- the dead-letter queue -----------------------------------------------------------------

DLQ_FIELDS = ("endpoint_id", "event_type", "resolved", "before")
NOTICES = {
    "retried": "Sent again: the delivery starts a fresh cycle of attempts.",
    "resolved": "Resolved: the entry stays on record and is not sent again.",
}
NO_ENDPOINT = -1  # no row has it: a filter on an endpoint the tenant has not matches nothing


class DeadLetterSearch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    endpoint_id: str | None = Field(default=None, max_length=255, pattern=r"^ep_[0-9A-Za-z]+$")
    event_type: EventType | None = None
    resolved: bool = False  # include the resolved entries
    before: int | None = Field(default=None, ge=0, le=MAX_ID)

    def query(self, **changes: Any) -> dict[str, str]:
        values = self.model_dump() | changes
        found = {k: str(values[k]) for k in ("endpoint_id", "event_type") if values[k]}
        if values["resolved"]:
            found["resolved"] = "on"
        if values["before"] is not None:
            found["before"] = str(values["before"])
        return found


def _dlq_search(values: Any) -> DeadLetterSearch:
    """The filter of the dead-letter queue from a query or a form (a checkbox sends ``on``)."""
    fields = form_values(values, DLQ_FIELDS)
    if "resolved" in fields:
        fields["resolved"] = str(fields["resolved"] in ("on", "true", "1"))
    return DeadLetterSearch.model_validate(fields)


def dlq_path(tenant_ref: str, search: DeadLetterSearch, **extra: str) -> str:
    query = urlencode(search.query(before=None) | extra)
    return f"/ui/tenants/{tenant_ref}/dlq" + (f"?{query}" if query else "")


async def _filter_endpoint(
    session: AsyncSession, tenant_id: int, endpoint_id: str | None
) -> int | None:
    if endpoint_id is None:
        return None
    try:
        return await endpoint_row_id(session, tenant_id=tenant_id, endpoint_id=endpoint_id)
    except NotFound:
        return NO_ENDPOINT


@router.get("/tenants/{tenant_id}/dlq")
async def dead_letters(
    request: Request,
    tenant_id: str,
    console: ConsoleDep,
    session: SessionDep,
    runtime: RuntimeDep,
    deliveries: DeliveriesDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    ref, name = await _tenant(runtime, session, tenant_id)
    endpoints = await endpoints_of(
        session, tenant_id=ref.id, limit=runtime.settings.max_endpoints_per_tenant, after=None
    )
    context: dict[str, Any] = {
        "tenant": _tenant_view(ref, name),
        "endpoints": [(format_id(Kind.ENDPOINT, e.public_id), e.url) for e in endpoints],
        "entries": [],
        "next_url": None,
        "first_url": None,
        "notice": NOTICES.get(notice or ""),
    }
    try:
        search = _dlq_search(request.query_params)
    except ValidationError as exc:
        values = form_values(request.query_params, DLQ_FIELDS)
        return render(
            request,
            "dlq.html",
            csrf=console.csrf,
            status_code=422,
            search=DeadLetterSearch(),
            values=values,
            errors=form_errors(exc),
            **context,
        )
    rows = await deliveries.list_dead_letters(
        session,
        tenant_id=ref.id,
        endpoint_id=await _filter_endpoint(session, ref.id, search.endpoint_id),
        event_type=search.event_type,
        resolved=None if search.resolved else False,
        limit=PAGE_SIZE,
        before=search.before,
    )
    urls = dict(context["endpoints"])
    context["entries"] = [
        {
            **DeadLetterRead.of(row).model_dump(),
            "event_url": event_path(ref.ref, row[1]),
            "endpoint_url": urls.get(format_id(Kind.ENDPOINT, row[3]), ""),
        }
        for row in rows
    ]
    base = f"/ui/tenants/{ref.ref}/dlq"
    if len(rows) == PAGE_SIZE:
        context["next_url"] = f"{base}?{urlencode(search.query(before=rows[-1][0].id))}"
    if search.before is not None:
        context["first_url"] = dlq_path(ref.ref, search)
    return render(
        request,
        "dlq.html",
        csrf=console.csrf,
        search=search,
        values=search.query(before=None),
        errors={},
        **context,
    )


def _back_to_dlq(tenant_ref: str, form: FormData, notice: str) -> RedirectResponse:
    try:
        search = _dlq_search(form)
    except ValidationError:
        search = DeadLetterSearch()
    return see_other(dlq_path(tenant_ref, search, notice=notice))


@router.post("/tenants/{tenant_id}/dlq/{entry_id}/retry")
async def retry_dead_letter(
    tenant_id: str,
    entry_id: PublicIdPath,
    form: FormDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    deliveries: DeliveriesDep,
) -> Response:
    ref = await tenant_named(runtime, tenant_id)
    await deliveries.retry_dead_letter(session, tenant_id=ref.id, entry_id=entry_id)
    return _back_to_dlq(ref.ref, form, "retried")


@router.post("/tenants/{tenant_id}/dlq/{entry_id}/resolve")
async def resolve_dead_letter(
    tenant_id: str,
    entry_id: PublicIdPath,
    form: FormDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    deliveries: DeliveriesDep,
) -> Response:
    ref = await tenant_named(runtime, tenant_id)
    await deliveries.discard_dead_letter(session, tenant_id=ref.id, entry_id=entry_id)
    return _back_to_dlq(ref.ref, form, "resolved")


@router.post("/tenants/{tenant_id}/dlq/retry-all")
async def retry_all_dead_letters(
    tenant_id: str,
    form: FormDep,
    session: WriteSessionDep,
    runtime: RuntimeDep,
    deliveries: DeliveriesDep,
) -> Response:
    """Retry every unresolved entry matching the filter, as a background job."""
    ref = await tenant_named(runtime, tenant_id)
    search = _dlq_search(form)  # a form the page did not make: a 422 page
    endpoint_id = None
    if search.endpoint_id is not None:
        endpoint = await get_endpoint(session, tenant_id=ref.id, endpoint_id=search.endpoint_id)
        endpoint_id = endpoint.id
    job = await jobs.start_dead_letter_retry(
        session,
        deliveries,
        tenant_id=ref.id,
        endpoint_id=endpoint_id,
        endpoint_ref=search.endpoint_id,
        event_type=search.event_type,
    )
    if runtime.jobs is not None:
        after_commit(session, runtime.jobs.wake)
    return see_other(f"/ui/tenants/{ref.ref}/jobs/{format_id(Kind.JOB, job.public_id)}")


# -- a background job's progress -----------------------------------------------------------

KIND_TITLES = {
    JobKind.RECOVER: "Recovery of an endpoint",
    JobKind.RETRY_DEAD_LETTERS: "Retry of dead letters",
}
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)
STOP_POLLING = 286  # htmx swaps the answer in and stops polling


async def _job_context(session: AsyncSession, ref: AuthTenant, job_id: str) -> dict[str, Any]:
    job, _ = await jobs.get_job(session, tenant_id=ref.id, job_id=job_id)
    read = JobRead.of(job, ref.ref)
    return {
        "job": read,
        "title": KIND_TITLES.get(read.kind, read.kind),
        "finished": read.status in FINISHED,
        "progress_url": f"/ui/tenants/{ref.ref}/jobs/{read.id}/progress",
        "page_url": f"/ui/tenants/{ref.ref}/jobs/{read.id}",
    }


@router.get("/tenants/{tenant_id}/jobs/{job_id}")
async def job_page(
    request: Request,
    tenant_id: str,
    job_id: PublicIdPath,
    console: ConsoleDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    ref, name = await _tenant(runtime, session, tenant_id)
    context = await _job_context(session, ref, job_id)
    return render(
        request, "dlq_job.html", csrf=console.csrf, tenant=_tenant_view(ref, name), **context
    )


@router.get("/tenants/{tenant_id}/jobs/{job_id}/progress")
async def job_progress(
    request: Request,
    tenant_id: str,
    job_id: PublicIdPath,
    _: ConsoleDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> Response:
    """The progress panel's content, which htmx swaps in every second; once the job has
    ended, with status 286: htmx's "stop polling"."""
    ref = await tenant_named(runtime, tenant_id)
    context = await _job_context(session, ref, job_id)
    status = STOP_POLLING if context["finished"] else 200
    return render(request, "dlq_job_progress.html", status_code=status, **context)


# -- live ----------------------------------------------------------------------------------


def _live_rows(rows: list[LiveDelivery]) -> list[dict[str, Any]]:
    found = []
    for row in rows:
        delivery = row.delivery
        tenant_ref = format_id(Kind.TENANT, row.tenant_id)
        found.append(
            {
                "id": format_id(Kind.DELIVERY, delivery.public_id),
                "tenant_ref": tenant_ref,
                "created_at": delivery.created_at,
                "tenant_url": f"/ui/tenants/{tenant_ref}",
                "tenant_name": row.tenant_name,
                "event_id": row.event_id,
                "event_url": event_path(tenant_ref, row.event_id),
                "event_type": row.event_type,
                "endpoint_id": format_id(Kind.ENDPOINT, row.endpoint_id),
                "status": delivery.status,
                "attempts": delivery.attempt_count,
                "cycle": delivery.cycle,
                "last_status_code": delivery.last_status_code,
                "last_error": delivery.last_error,
            }
        )
    return found


@router.get("/live")
async def live_page(
    request: Request, console: ConsoleDep, session: SessionDep, deliveries: DeliveriesDep
) -> Response:
    rows = await deliveries.latest_deliveries(session, limit=LIVE_SIZE)
    return render(request, "live.html", csrf=console.csrf, rows=_live_rows(rows), size=LIVE_SIZE)


@router.get("/live/rows")
async def live_rows(
    request: Request, _: ConsoleDep, session: SessionDep, deliveries: DeliveriesDep
) -> Response:
    """The table's rows, which htmx swaps into the live table every 2 s."""
    rows = await deliveries.latest_deliveries(session, limit=LIVE_SIZE)
    return render(request, "live_rows.html", rows=_live_rows(rows))
