"""webhookd's rows as the Svix API shows them, and its list iterators (pure)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from webhookd.delivery.headers import looks_secret
from webhookd.endpoint.schemas import EndpointCreate
from webhookd.ids import Kind, format_id
from webhookd.models import Attempt, Endpoint, Event, EventTypeDef, Tenant
from webhookd.schemas import decode_cursor, encode_cursor
from webhookd.svix.schemas import (
    ApplicationOut,
    EndpointOut,
    EndpointPatch,
    EndpointUpsertIn,
    EventTypeOut,
    ListResponse,
    MessageAttemptOut,
    MessageOut,
    MessageStatus,
    Ordering,
)

T = TypeVar("T")
Row = TypeVar("Row")
PREVIOUS = "-"  # an iterator back to the page before: "-" + the cursor of its first row


def application_out(tenant: Tenant) -> ApplicationOut:
    return ApplicationOut(
        id=format_id(Kind.TENANT, tenant.public_id),
        uid=tenant.uid,
        name=tenant.name,
        metadata=tenant.labels or {},
        created_at=tenant.created_at,
        updated_at=tenant.created_at,
    )


def endpoint_out(endpoint: Endpoint) -> EndpointOut:
    rate = int(endpoint.rate_limit) if endpoint.rate_limit is not None else None
    types = endpoint.event_types or None
    return EndpointOut(
        id=format_id(Kind.ENDPOINT, endpoint.public_id),
        url=endpoint.url,
        description=endpoint.description or "",
        uid=endpoint.uid,
        disabled=not endpoint.is_active,
        event_types=types,
        filter_types=types,
        channels=endpoint.channels,
        throttle_rate=rate,
        rate_limit=rate,
        metadata=endpoint.labels or {},
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


def endpoint_fields(data: EndpointUpsertIn | EndpointPatch, *, whole: bool) -> dict[str, Any]:
    """A Svix endpoint body as the native one's fields: those it sets (``whole``: every
    field, reset where left out, as a PUT does)."""
    values = data.model_dump(exclude_unset=not whole, exclude={"secret", "disabled"})
    if "disabled" in data.model_fields_set or whole:
        values["is_active"] = not data.disabled
    if "event_types" in values:
        values["event_types"] = values["event_types"] or []
    return values


def endpoint_create(data: EndpointUpsertIn, **extra: Any) -> EndpointCreate:
    return EndpointCreate.model_validate({**endpoint_fields(data, whole=True), **extra})


def message_out(event: Event) -> MessageOut:
    return MessageOut(
        id=format_id(Kind.EVENT, event.public_id),
        event_id=event.event_id,
        event_type=event.event_type,
        payload=event.payload,
        channels=event.channels,
        timestamp=event.created_at,
    )


def attempt_out(
    attempt: Attempt, *, delivery_ref: str, msg_id: str, endpoint_id: str, url: str
) -> MessageAttemptOut:
    status = MessageStatus.SUCCESS if attempt.succeeded else MessageStatus.FAIL
    return MessageAttemptOut(
        id=f"atmpt_{delivery_ref.removeprefix('dlv_')}_{attempt.cycle}_{attempt.attempt_number}",
        msg_id=msg_id,
        endpoint_id=endpoint_id,
        url=url,
        response=attempt.response_body or attempt.error_message or "",
        response_status_code=attempt.response_status or 0,
        response_duration_ms=round(attempt.duration_ms),
        status=status,
        status_text=status.name.lower(),
        timestamp=attempt.started_at,
    )


def event_type_out(row: EventTypeDef) -> EventTypeOut:
    return EventTypeOut(
        name=row.name,
        description=row.description or "",
        archived=row.archived,
        schemas={"1": row.schema} if row.schema is not None else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def sensitive_headers(headers: dict[str, str]) -> list[str]:
    return sorted(name for name in headers if looks_secret(name))


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page starts: past the row ``after`` (None: at the start), walking newest
    first or not."""

    after: int | None
    newest_first: bool
    backwards: bool  # the page before ``after`` (a previous iterator)


def position(iterator: str | None, order: Ordering) -> Position:
    """An iterator the client gave back (422 if it is not one of ours)."""
    backwards = iterator is not None and iterator.startswith(PREVIOUS)
    after = decode_cursor(iterator.removeprefix(PREVIOUS) if iterator else None)
    return Position(after, (order == Ordering.DESCENDING) != backwards, backwards)


async def paged(
    fetch: Callable[[int, Position], Awaitable[Sequence[Row]]],
    row_id: Callable[[Row], int],
    show: Callable[[Row], T],
    *,
    limit: int,
    at: Position,
    two_way: bool = True,
) -> ListResponse[T]:
    """One page of ``limit`` rows from ``fetch(limit + 1, at)`` (the extra row tells
    whether there are more); ``two_way``: with an iterator back to the page before."""
    fetched = list(await fetch(limit + 1, at))
    rows, more = fetched[:limit], len(fetched) > limit
    if at.backwards:
        rows.reverse()
    ids = [row_id(row) for row in rows]
    return ListResponse(
        data=[show(row) for row in rows],
        iterator=encode_cursor(ids[-1]) if ids else None,
        prev_iterator=PREVIOUS + encode_cursor(ids[0]) if ids and two_way else None,
        done=not more,
    )
