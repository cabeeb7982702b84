from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webhookd.ids import Kind, format_id
from webhookd.models import DeliveryStatus, Event
from webhookd.schemas import (
    CLIENT_ID_PATTERN,
    MAX_JSON_DEPTH,
    NO_NUL_PATTERN,
    EventType,
    json_depth,
)

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


TenantRef = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL_PATTERN)]
Channel = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\-_.:]+$")]
Channels = Annotated[
    list[Channel],
    Field(
        min_length=1,
        max_length=10,
        description="Channels of the event (1-10; letters, digits, - _ . :): an endpoint with "
        "channels gets only the events in one of them",
        examples=[["project_123"]],
    ),
]


class EventCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: EventId
    event_type: EventType
    payload: dict[str, Any] = Field(description="Any JSON object; delivered as is.")
    tenant_id: TenantRef | None = Field(
        default=None,
        description="With the admin key: the tenant to publish for, by its id (`tnt_…`) or "
        "uid. With a tenant's key: may be left out (it names the key's own tenant).",
        examples=[Kind.TENANT.example()],
    )
    uid: TenantRef | None = Field(
        default=None,
        description="With the admin key: the tenant to publish for, by its uid (instead of "
        "`tenant_id`).",
        examples=["customer-42"],
    )
    channels: Channels | None = None

    @field_validator("payload")
    @classmethod
    def _bounded_depth(cls, value: dict[str, Any]) -> dict[str, Any]:
        if json_depth(value) > MAX_JSON_DEPTH:
            raise ValueError(f"payload nests deeper than {MAX_JSON_DEPTH} levels")
        return value

    @model_validator(mode="after")
    def _one_tenant(self) -> EventCreate:
        if self.tenant_id is not None and self.uid is not None and self.tenant_id != self.uid:
            raise ValueError("give the tenant by tenant_id or by uid, not both")
        return self

    @property
    def tenant_ref(self) -> str | None:
        """The tenant the body names (by id or uid), if any."""
        return self.tenant_id if self.tenant_id is not None else self.uid


class DeliverySummary(BaseModel):
    id: str = Field(examples=[Kind.DELIVERY.example()])
    endpoint_id: str = Field(examples=[Kind.ENDPOINT.example()])
    status: DeliveryStatus


class EventAccepted(BaseModel):
    id: str = Field(description="The event's id in webhookd", examples=[Kind.EVENT.example()])
    event_id: str = Field(description="Your event_id")
    event_type: str
    created_at: dt.datetime
    deliveries: list[DeliverySummary]
    duplicate: bool


class EventRead(BaseModel):
    id: str = Field(examples=[Kind.EVENT.example()])
    event_id: str
    event_type: str
    payload: dict[str, Any]
    channels: list[str] | None = None
    created_at: dt.datetime

    @classmethod
    def of(cls, event: Event) -> EventRead:
        return cls(
            id=format_id(Kind.EVENT, event.public_id),
            event_id=event.event_id,
            event_type=event.event_type,
            payload=event.payload,
            channels=event.channels,
            created_at=event.created_at,
        )
