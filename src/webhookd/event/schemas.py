from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from webhookd.delivery.schemas import AttemptRead
from webhookd.models import DeliveryStatus
from webhookd.schemas import CLIENT_ID_PATTERN, MAX_JSON_DEPTH, EventType, ReadModel, json_depth

EVENT_ID_PATTERN = CLIENT_ID_PATTERN
EventId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=EVENT_ID_PATTERN,
        description="Your idempotency key: printable ASCII without spaces and without "
        "/ ? # % \\ (so that it can stand in a URL path as it is). Publishing the same "
        "event_id again returns the original event and delivers nothing new.",
        examples=["evt_123"],
    ),
]

# The event_id of a path: what cannot be an event_id is a 422 (NUL would be a 500 on
# PostgreSQL).
EventIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=EVENT_ID_PATTERN,
        description="The event_id the event was published with",
    ),
]


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: EventId
    event_type: EventType
    payload: dict[str, Any] = Field(description="Any JSON object; delivered as is.")

    @field_validator("payload")
    @classmethod
    def _bounded_depth(cls, value: dict[str, Any]) -> dict[str, Any]:
        if json_depth(value) > MAX_JSON_DEPTH:
            raise ValueError(f"payload nests deeper than {MAX_JSON_DEPTH} levels")
        return value


class DeliverySummary(BaseModel):
    id: int
    endpoint_id: int
    status: DeliveryStatus


class EventAccepted(BaseModel):
    id: int
    event_id: str
    event_type: str
    created_at: dt.datetime
    deliveries: list[DeliverySummary]
    duplicate: bool


class EventRead(ReadModel):
    id: int
    event_id: str
    event_type: str
    payload: dict[str, Any]
    created_at: dt.datetime


class DeliveryDetail(ReadModel):
    id: int
    endpoint_id: int
    status: DeliveryStatus
    attempt_count: int
    cycle: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    last_status_code: int | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    attempts: list[AttemptRead]
