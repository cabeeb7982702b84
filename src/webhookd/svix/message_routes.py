"""``/api/v1/app/{app_id}/msg`` and ``…/attempt``: messages are webhookd events, published
through the native publish (rate limit, event-type catalog, group commit); attempts are the
attempts of their deliveries."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd.api.deps import DeliveriesDep, RuntimeDep, SessionDep
from webhookd.delivery.schemas import DeliveryRow
from webhookd.delivery.service import DeliveryService
from webhookd.endpoint import service as endpoints
from webhookd.errors import field_error
from webhookd.event import service as events
from webhookd.event.ingest import publish_for
from webhookd.event.schemas import EventCreate
from webhookd.event.service import IdempotencyConflict
from webhookd.ids import Kind, format_id, new_id
from webhookd.models import Attempt
from webhookd.schemas import EVENT_TYPE_PATTERN, PublicIdPath, decode_cursor, encode_cursor
from webhookd.svix.auth import AppDep, IdempotencyDep
from webhookd.svix.convert import attempt_out, message_out
from webhookd.svix.errors import SvixRoute
from webhookd.svix.schemas import (
    ListResponse,
    MessageAttemptOut,
    MessageIn,
    MessageOut,
    MessageStatus,
)
from webhookd.tenant.keycache import AuthTenant

router = APIRouter(prefix="/api/v1/app/{app_id}", tags=["svix"], route_class=SvixRoute)

Limit = Annotated[int, Query(ge=1, le=250)]
Iterator = Annotated[str | None, Query(max_length=64)]
StatusQuery = Annotated[MessageStatus | None, Query()]
# Ids of messages sent without an eventId (Svix's are msg_…; webhookd needs one to publish).
GENERATED_PREFIX = "msg_"


@router.post(
    "/msg",
    status_code=202,
    response_model=MessageOut,
    responses={200: {"model": MessageOut, "description": "eventId used before: the original"}},
)
async def create_message(
    app: AppDep,
    data: MessageIn,
    runtime: RuntimeDep,
    session: SessionDep,
    idem: IdempotencyDep,
) -> Response:
    """Publish a message to the application's endpoints. An `eventId` already used answers
    the original message and delivers nothing new."""
    if (replay := await idem.replay_in(runtime.db)) is not None:
        return replay
    create = EventCreate(
        event_id=data.event_id or GENERATED_PREFIX + new_id().hex,
        event_type=data.event_type,
        payload=data.payload,
        channels=data.channels,
    )
    try:
        accepted, headers = await publish_for(runtime, app, create)
    except IdempotencyConflict:  # the eventId was used with another type or payload
        original = await events.get_event(session, tenant_id=app.id, event_id=create.event_id)
        return await idem.remember_in(runtime.db, 200, message_out(original))
    out = MessageOut(
        id=accepted.id,
        event_id=accepted.event_id,
        event_type=accepted.event_type,
        payload=data.payload,
        channels=data.channels,
        timestamp=accepted.created_at,
    )
    if accepted.duplicate:
        original = await events.get_event(session, tenant_id=app.id, event_id=create.event_id)
        out = message_out(original)
    response = await idem.remember_in(runtime.db, 200 if accepted.duplicate else 202, out)
    response.headers.update(headers)
    return response


@router.get("/msg", response_model=ListResponse[MessageOut])
async def list_messages(
    app: AppDep,
    session: SessionDep,
    deliveries: DeliveriesDep,
    limit: Limit = 50,
    iterator: Iterator = None,
    event_types: Annotated[list[str] | None, Query(max_length=10)] = None,
    channel: Annotated[str | None, Query(max_length=128)] = None,
    before: Annotated[dt.datetime | None, Query()] = None,
    after: Annotated[dt.datetime | None, Query()] = None,
) -> ListResponse[MessageOut]:
    """The application's messages, newest first (one event type at most; `channel` keeps
    the page's messages in that channel, so a page may hold fewer than `limit`)."""
    page = await events.search_events(
        session,
        deliveries=deliveries,
        tenant_id=app.id,
        event_id=None,
        event_type=_one_type(event_types),
        status=None,
        since=after,
        until=before,
        limit=limit,
        before=decode_cursor(iterator),
    )
    shown = [e for e in page.events if channel is None or channel in (e.channels or ())]
    last = page.before or (page.events[-1].id if page.events else None)
    return ListResponse(
        data=[message_out(e) for e in shown],
        iterator=encode_cursor(last) if last is not None else None,
        prev_iterator=None,
        done=page.before is None,
    )


def _one_type(values: list[str] | None) -> str | None:
    """The event type of ``event_types`` (repeated, or comma-separated as the SDKs send
    it): one at most here."""
    names = [name for value in values or () for name in value.split(",") if name]
    if len(names) > 1:
        raise field_error("event_types", "one event type at most", location="query")
    if names and not re.fullmatch(EVENT_TYPE_PATTERN, names[0]):
        raise field_error("event_types", f"{names[0]!r} is not an event type", location="query")
    return names[0] if names else None


@router.get("/msg/{msg_id}", response_model=MessageOut)
async def get_message(app: AppDep, msg_id: PublicIdPath, session: SessionDep) -> MessageOut:
    """A message by its id (`evt_…`) or its `eventId`."""
    return message_out(await events.get_event(session, tenant_id=app.id, event_id=msg_id))


class _Attempts:
    """Attempts as Svix shows them: with their message's id and their endpoint's URL, each
    looked up once."""

    def __init__(self, session: AsyncSession, app: AuthTenant) -> None:
        self.session, self.app = session, app
        self.urls: dict[str, str] = {}
        self.messages: dict[str, str] = {}

    async def url(self, endpoint_ref: str) -> str:
        if endpoint_ref not in self.urls:
            endpoint = await endpoints.get_endpoint(
                self.session, tenant_id=self.app.id, endpoint_id=endpoint_ref
            )
            self.urls[endpoint_ref] = endpoint.url
        return self.urls[endpoint_ref]

    async def msg_id(self, event_id: str) -> str:
        if event_id not in self.messages:
            event = await events.get_event(self.session, tenant_id=self.app.id, event_id=event_id)
            self.messages[event_id] = format_id(Kind.EVENT, event.public_id)
        return self.messages[event_id]

    async def of(
        self, row: DeliveryRow, attempts: list[Attempt], status: MessageStatus | None
    ) -> list[MessageAttemptOut]:
        delivery, event_id, _, endpoint_public = row
        endpoint_ref = format_id(Kind.ENDPOINT, endpoint_public)
        shown = [
            attempt_out(
                a,
                delivery_ref=format_id(Kind.DELIVERY, delivery.public_id),
                msg_id=await self.msg_id(event_id),
                endpoint_id=endpoint_ref,
                url=await self.url(endpoint_ref),
            )
            for a in attempts
        ]
        shown.sort(key=lambda a: a.timestamp, reverse=True)
        return [a for a in shown if status is None or a.status == status]


@router.get("/attempt/msg/{msg_id}", response_model=ListResponse[MessageAttemptOut])
async def list_attempts_by_msg(
    app: AppDep,
    msg_id: PublicIdPath,
    session: SessionDep,
    deliveries: DeliveriesDep,
    status: StatusQuery = None,
    endpoint_id: Annotated[str | None, Query(max_length=255)] = None,
    limit: Limit = 50,
    iterator: Iterator = None,
) -> ListResponse[MessageAttemptOut]:
    """The attempts to deliver a message, newest first (of one endpoint, id or uid)."""
    rows = await events.event_deliveries(
        session, deliveries=deliveries, tenant_id=app.id, event_id=msg_id
    )
    attempts = _Attempts(session, app)
    only = None
    if endpoint_id is not None:
        endpoint = await endpoints.get_endpoint(session, tenant_id=app.id, endpoint_id=endpoint_id)
        only = endpoint.public_id
    shown: list[MessageAttemptOut] = []
    for row, made in rows:
        if only is None or row[3] == only:
            shown += await attempts.of(row, made, status)
    shown.sort(key=lambda a: a.timestamp, reverse=True)
    start = decode_cursor(iterator) or 0
    page = shown[start : start + limit]
    more = start + limit < len(shown)
    return ListResponse(
        data=page,
        iterator=encode_cursor(start + len(page)),
        prev_iterator=None,
        done=not more,
    )


@router.get("/attempt/endpoint/{endpoint_id}", response_model=ListResponse[MessageAttemptOut])
async def list_attempts_by_endpoint(
    app: AppDep,
    endpoint_id: PublicIdPath,
    session: SessionDep,
    deliveries: DeliveriesDep,
    status: StatusQuery = None,
    limit: Limit = 50,
    iterator: Iterator = None,
) -> ListResponse[MessageAttemptOut]:
    """The attempts to deliver to an endpoint (id or uid), newest first; a page holds the
    attempts of `limit` messages."""
    endpoint = await endpoints.get_endpoint(session, tenant_id=app.id, endpoint_id=endpoint_id)
    rows = await deliveries.list_deliveries(
        session,
        tenant_id=app.id,
        endpoint_id=endpoint.id,
        statuses=(),
        since=None,
        limit=limit + 1,
        before=decode_cursor(iterator),
    )
    page, more = rows[:limit], len(rows) > limit
    attempts = _Attempts(session, app)
    attempts.urls[format_id(Kind.ENDPOINT, endpoint.public_id)] = endpoint.url
    shown = []
    for row in page:
        _, made = await _delivery_attempts(session, deliveries, app, row)
        shown += await attempts.of(row, made, status)
    return ListResponse(
        data=shown,
        iterator=encode_cursor(page[-1][0].id) if page else None,
        prev_iterator=None,
        done=not more,
    )


async def _delivery_attempts(
    session: AsyncSession, deliveries: DeliveryService, app: AuthTenant, row: DeliveryRow
) -> tuple[DeliveryRow, list[Attempt]]:
    ref = format_id(Kind.DELIVERY, row[0].public_id)
    return await deliveries.get_delivery(session, tenant_id=app.id, delivery_id=ref)
