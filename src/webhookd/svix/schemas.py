"""The Svix API's bodies, in camelCase as the official SDKs send and parse them.

Input models ignore fields webhookd does not use (the SDKs send some of them, e.g. `tags`);
the fields it uses are validated like the native API's and a bad one is a 422 naming it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from webhookd.endpoint.schemas import (
    Description,
    EndpointChannels,
    EventTypes,
    Headers,
    Metadata,
    Url,
)
from webhookd.endpoint.schemas import Uid as EndpointUid
from webhookd.event.schemas import Channels, EventId
from webhookd.schemas import NO_NUL_PATTERN, EventType
from webhookd.tenant.schemas import Uid as TenantUid

T = TypeVar("T")


class SvixModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Ordering(enum.StrEnum):
    ASCENDING = "ascending"
    DESCENDING = "descending"


class ListResponse(SvixModel, Generic[T]):
    data: list[T]
    iterator: str | None
    prev_iterator: str | None = None
    done: bool


# -- applications (webhookd tenants) ---------------------------------------------------------

AppName = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL_PATTERN)]
ThrottleRate = Annotated[int, Field(ge=1, le=10_000)]


class ApplicationIn(SvixModel):
    name: AppName
    uid: TenantUid | None = None
    throttle_rate: ThrottleRate | None = None
    metadata: Metadata | None = None


class ApplicationPatch(SvixModel):
    name: AppName | None = None
    uid: TenantUid | None = None
    throttle_rate: ThrottleRate | None = None
    metadata: Metadata | None = None


class ApplicationOut(SvixModel):
    id: str
    uid: str | None
    name: str
    throttle_rate: int | None = None
    metadata: dict[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime


# -- endpoints -------------------------------------------------------------------------------

# Svix's SDKs call the event types of an endpoint `filterTypes` (older) or `eventTypes`.
EndpointEventTypes = Annotated[
    EventTypes | None,
    Field(default=None, validation_alias=AliasChoices("eventTypes", "filterTypes", "event_types")),
]
EndpointRate = Annotated[
    int | None,
    Field(
        default=None, ge=1, le=10_000, validation_alias=AliasChoices("throttleRate", "rateLimit")
    ),
]
Secret = Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]{32,100}$")]


class _EndpointFields(SvixModel):
    description: Description = None
    uid: EndpointUid | None = None
    disabled: bool | None = None
    event_types: EndpointEventTypes = None
    channels: EndpointChannels | None = None
    rate_limit: EndpointRate = None
    metadata: Metadata | None = None


class EndpointUpsertIn(_EndpointFields):
    """PUT: the endpoint as a whole (what is left out is reset)."""

    url: Url


class EndpointIn(EndpointUpsertIn):
    secret: Secret | None = None
    headers: Headers | None = None


class EndpointPatch(_EndpointFields):
    url: Url | None = None


class EndpointOut(SvixModel):
    id: str
    url: str
    description: str
    uid: str | None
    disabled: bool
    event_types: list[str] | None
    filter_types: list[str] | None
    channels: list[str] | None
    throttle_rate: int | None
    rate_limit: int | None
    metadata: dict[str, str]
    version: int = 1
    created_at: dt.datetime
    updated_at: dt.datetime


class EndpointSecretOut(SvixModel):
    key: str


class EndpointSecretRotateIn(SvixModel):
    key: Secret | None = None
    grace_period_seconds: int | None = Field(default=None, ge=0, le=7 * 86_400)


class EndpointHeadersIn(SvixModel):
    headers: Headers


class EndpointHeadersPatchIn(SvixModel):
    headers: dict[str, str | None]
    delete_headers: list[str] | None = None


class EndpointHeadersOut(SvixModel):
    headers: dict[str, str]
    sensitive: list[str]


# -- messages (webhookd events) and attempts -------------------------------------------------


class MessageIn(SvixModel):
    event_id: EventId | None = None
    event_type: EventType
    payload: dict[str, Any]
    channels: Channels | None = None


class MessageOut(SvixModel):
    id: str
    event_id: str | None
    event_type: str
    payload: dict[str, Any]
    channels: list[str] | None
    tags: list[str] | None = None
    timestamp: dt.datetime


class MessageStatus(enum.IntEnum):
    SUCCESS = 0
    PENDING = 1
    FAIL = 2
    SENDING = 3


class MessageAttemptOut(SvixModel):
    id: str
    msg_id: str
    endpoint_id: str
    url: str
    response: str
    response_status_code: int
    response_duration_ms: int
    status: MessageStatus
    status_text: str
    trigger_type: int = 0  # scheduled
    timestamp: dt.datetime


# -- event types, portal access --------------------------------------------------------------


class EventTypeIn(SvixModel):
    name: EventType
    description: Annotated[str, Field(max_length=1000, pattern=NO_NUL_PATTERN)]
    archived: bool | None = None
    schemas: dict[str, Any] | None = None


class EventTypeUpsertIn(SvixModel):
    description: Annotated[str, Field(max_length=1000, pattern=NO_NUL_PATTERN)]
    archived: bool | None = None
    schemas: dict[str, Any] | None = None


class EventTypePatch(SvixModel):
    description: Annotated[str | None, Field(max_length=1000, pattern=NO_NUL_PATTERN)] = None
    archived: bool | None = None
    schemas: dict[str, Any] | None = None


class EventTypeOut(SvixModel):
    name: str
    description: str
    archived: bool
    deprecated: bool = False
    schemas: dict[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime


class AppPortalAccessIn(SvixModel):
    expiry: int | None = Field(default=None, ge=60, le=86_400)


class AppPortalAccessOut(SvixModel):
    url: str
    token: str


class RecoverIn(SvixModel):
    since: dt.datetime
    until: dt.datetime | None = None


class BackgroundTaskStatus(enum.StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class BackgroundTaskOut(SvixModel):
    """A recovery job as a Svix background task (``qtask_…`` there, ``job_…`` here)."""

    id: str
    status: BackgroundTaskStatus
    task: str = "endpoint.recover"
    data: dict[str, Any] = Field(default_factory=dict)
    updated_at: dt.datetime


class EmptyResponse(SvixModel):
    """``{}``: what Svix answers where there is nothing to say (the SDKs parse it)."""
