from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from webhookd.ids import Kind, format_id
from webhookd.models import Endpoint
from webhookd.schemas import NO_NUL_PATTERN, EventType

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
EventTypes = Annotated[
    list[EventType],
    Field(
        max_length=100,
        description="Event types to receive; empty means every event type",
        examples=[["user.created", "order.completed"]],
    ),
    AfterValidator(lambda values: list(dict.fromkeys(values))),
]
Description = Annotated[str | None, Field(max_length=500, pattern=NO_NUL_PATTERN)]


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: EventTypes = []
    is_active: bool = True
    description: Description = None


class EndpointUpdate(BaseModel):
    """Only the fields present change."""

    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: EventTypes | None = None
    is_active: bool | None = None
    description: Description = None


class EndpointRead(BaseModel):
    id: str = Field(examples=[Kind.ENDPOINT.example()])
    tenant_id: str = Field(examples=[Kind.TENANT.example()])
    url: str
    event_types: list[str]
    is_active: bool
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, endpoint: Endpoint, tenant_ref: str) -> EndpointRead:
        return cls(
            id=format_id(Kind.ENDPOINT, endpoint.public_id),
            tenant_id=tenant_ref,
            url=endpoint.url,
            event_types=endpoint.event_types,
            is_active=endpoint.is_active,
            description=endpoint.description,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )
