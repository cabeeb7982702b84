from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from webhookd.schemas import NO_NUL_PATTERN, EventType, ReadModel

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


class EndpointRead(ReadModel):
    id: int
    tenant_id: int
    url: str
    event_types: list[str]
    is_active: bool
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
