from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from webhookd.delivery.filters import FilterError, validate_filter
from webhookd.delivery.headers import redact
from webhookd.ids import Kind, format_id
from webhookd.models import Circuit, DisabledReason, Endpoint, Ordering
from webhookd.schemas import CLIENT_ID_PATTERN, NO_NUL_PATTERN

Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        pattern=NO_NUL_PATTERN,
        description="http(s) URL that receives the webhooks",
        examples=["https://your-app.com/webhooks"],
    ),
]
EventTypeSelector = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.\-]+$|^[A-Za-z0-9_.\-]*[A-Za-z0-9_\-]\.\*$",
        description="An event type (letters, digits, '_', '.', '-'), or a prefix ending in "
        "'.*' for every type under it",
    ),
]
EventTypes = Annotated[
    list[EventTypeSelector],
    Field(
        max_length=100,
        description="Event types to receive; `invoice.*` receives every type that starts with "
        "`invoice.`; empty means every event type",
        examples=[["user.created", "invoice.*"]],
    ),
    AfterValidator(lambda values: list(dict.fromkeys(values))),
]
Description = Annotated[str | None, Field(max_length=500, pattern=NO_NUL_PATTERN)]

MAX_DELAY = 604_800  # seconds (a week) between two attempts at most
RetrySchedule = Annotated[
    list[Annotated[float, Field(gt=0, le=MAX_DELAY, allow_inf_nan=False)]],
    Field(
        min_length=1,
        max_length=50,
        description="Seconds to wait before each retry (1-50 delays, each 0 < d <= 604800); "
        "their number sets the attempts (one more). null: the global default "
        "(WEBHOOKD_RETRY_*)",
        examples=[[60, 300, 3600, 86400]],
    ),
]
RateLimit = Annotated[
    float,
    Field(
        gt=0,
        le=10_000,
        allow_inf_nan=False,
        description="Deliveries per second to this endpoint, across every delivering "
        "process (fractions allowed); null: no limit",
        examples=[20, 0.5],
    ),
]
# RFC 7230 token characters.
HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
RESERVED_PREFIXES = ("webhook-", "x-webhook-")


def _check_header_names(headers: dict[str, str]) -> dict[str, str]:
    seen: set[str] = set()
    for name in headers:
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_PREFIXES):
            raise ValueError(f"header {name!r} is set by webhookd and may not be replaced")
        if lowered in seen:
            raise ValueError(f"header {name!r} appears twice (names are case-insensitive)")
        seen.add(lowered)
    return headers


Headers = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME)],
        Annotated[str, Field(max_length=4096, pattern=r"^[^\r\n\x00]*$")],
    ],
    Field(
        max_length=20,
        description="Custom headers sent with each delivery (at most 20; not Host, "
        "Content-Length, Transfer-Encoding, Connection, webhook-* or X-Webhook-*). Values of "
        "names containing authorization, token, secret, key or cookie read back as "
        '"[redacted]"; sending "[redacted]" back keeps the stored value. PATCH replaces the '
        "whole object; null removes them.",
        examples=[{"X-Team": "payments", "Authorization": "Bearer …"}],
    ),
    AfterValidator(_check_header_names),
]


def _check_filter(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        validate_filter(spec)
    except FilterError as exc:
        raise ValueError(str(exc)) from None
    return spec


Filter = Annotated[
    dict[str, Any],
    Field(
        description="A payload filter: only events whose payload matches it are delivered "
        "here. Dotted paths and the operators $eq $ne $gt $gte $lt $lte $in $nin $exists "
        "$and $or $not (a bare value means $eq); docs/EVENT_TYPES.md. null: every payload.",
        examples=[{"amount": {"$gte": 100}, "customer.country": {"$in": ["DE", "FR"]}}],
    ),
    AfterValidator(_check_filter),
]
Uid = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=CLIENT_ID_PATTERN,
        description="Your own id for this endpoint, unique in its tenant; usable wherever "
        "its id is. Printable ASCII without / ? # % \\, and not starting with `ep_`.",
        examples=["billing-prod"],
    ),
]
Metadata = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL_PATTERN)],
        Annotated[str, Field(max_length=4096, pattern=NO_NUL_PATTERN)],
    ],
    Field(max_length=50, description="Your own labels (string keys and values, at most 50)"),
]
EndpointChannels = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\-_.:]+$")]],
    Field(
        min_length=1,
        max_length=10,
        description="Only events published with one of these channels come here (1-10); "
        "null: every event",
        examples=[["project_123"]],
    ),
]


def _not_an_id(value: str | None) -> str | None:
    if value is not None and value.startswith(Kind.ENDPOINT.value + "_"):
        raise ValueError("a uid may not start with ep_ (the prefix of endpoint ids)")
    return value


OrderingField = Annotated[
    Ordering,
    Field(
        description='"fifo": one delivery at a time, in publish order (the next waits until '
        'the previous succeeded or was dead-lettered); "unordered" (default): concurrently',
    ),
]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes = []
    is_active: bool = True
    description: Description = None
    retry_schedule: RetrySchedule | None = None
    rate_limit: RateLimit | None = None
    headers: Headers | None = None
    ordering: OrderingField = Ordering.UNORDERED
    filter: Filter | None = None
    uid: Uid | None = None
    metadata: Metadata | None = None
    channels: EndpointChannels | None = None

    _uid = field_validator("uid")(_not_an_id)


class EndpointUpdate(BaseModel):
    """Only the fields present change."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    is_active: bool | None = None
    description: Description = None
    retry_schedule: RetrySchedule | None = None
    rate_limit: RateLimit | None = None
    headers: Headers | None = None
    ordering: OrderingField | None = None
    filter: Filter | None = None
    uid: Uid | None = Field(default=None, description="null removes it")
    metadata: Metadata | None = None
    channels: EndpointChannels | None = None

    _uid = field_validator("uid")(_not_an_id)


class EndpointRead(BaseModel):
    id: str = Field(examples=[Kind.ENDPOINT.example()])
    tenant_id: str = Field(examples=[Kind.TENANT.example()])
    url: str
    event_types: list[str]
    is_active: bool
    description: str | None
    retry_schedule: list[float] | None
    rate_limit: float | None
    headers: dict[str, str] | None = Field(description="Secret-looking values redacted")
    ordering: Ordering
    filter: dict[str, Any] | None
    disabled_reason: DisabledReason | None = Field(
        description='Set by webhookd: "gone" (the endpoint answered 410), "failing" (no '
        "success for WEBHOOKD_AUTO_DISABLE_AFTER); deliveries wait until POST …/enable"
    )
    circuit: Circuit = Field(
        description='The circuit breaker: "closed" (delivering), "open" (no request until the '
        'cool-down is over), "half_open" (one probe is out)'
    )
    failing_since: dt.datetime | None = Field(
        description="First failure since the last success (null: not failing)"
    )
    uid: str | None = None
    metadata: dict[str, str] | None = None
    channels: list[str] | None = None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(
        cls, endpoint: Endpoint, tenant_ref: str, headers: dict[str, str] | None = None
    ) -> EndpointRead:
        """``headers``: the endpoint's custom headers, decrypted (redacted here)."""
        return cls(
            id=format_id(Kind.ENDPOINT, endpoint.public_id),
            tenant_id=tenant_ref,
            url=endpoint.url,
            event_types=endpoint.event_types,
            is_active=endpoint.is_active,
            description=endpoint.description,
            retry_schedule=endpoint.retry_schedule,
            rate_limit=endpoint.rate_limit,
            headers=redact(headers),
            ordering=Ordering(endpoint.ordering),
            filter=endpoint.filter,
            disabled_reason=DisabledReason(endpoint.disabled_reason)
            if endpoint.disabled_reason
            else None,
            circuit=Circuit(endpoint.circuit),
            failing_since=endpoint.failing_since,
            uid=endpoint.uid,
            metadata=endpoint.labels,
            channels=endpoint.channels,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )
