from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webhookd.ids import Kind, format_id
from webhookd.models import Attempt, DeadLetter, Delivery, DeliveryStatus
from webhookd.schemas import (
    EVENT_TYPE_PATTERN,
    MAX_JSON_DEPTH,
    NO_NUL_PATTERN,
    ReadModel,
    json_depth,
)

# A delivery with what is shown beside it: (delivery, event_id, event_type, endpoint's id).
DeliveryRow = tuple[Delivery, str, str, uuid.UUID]
# A dead-letter entry: (entry, event_id, delivery's public id, endpoint's public id).
DeadLetterRow = tuple[DeadLetter, str, uuid.UUID, uuid.UUID]

EndpointId = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_NUL_PATTERN)]
EndpointIdField = Field(
    description="The endpoint's id (`ep_…`)", examples=[Kind.ENDPOINT.example()]
)


class AttemptRead(ReadModel):
    cycle: int
    attempt_number: int
    started_at: dt.datetime
    duration_ms: float
    succeeded: bool
    response_status: int | None
    response_body: str | None = Field(description="First 4 KB of the receiver's answer")
    error_kind: str | None = Field(
        description="timeout, connection, tls, dns, refused_target, http_status, invalid_url"
    )
    error_message: str | None


class DeliveryRead(BaseModel):
    id: str = Field(
        description="The delivery's id, sent as `webhook-id` with every attempt of it",
        examples=[Kind.DELIVERY.example()],
    )
    event_id: str = Field(description="The publisher's event_id")
    event_type: str
    endpoint_id: str = EndpointIdField
    status: DeliveryStatus
    attempt_count: int = Field(description="Attempts made in the current cycle")
    cycle: int = Field(description="1, then one more for each retry from the dead-letter queue")
    next_attempt_at: dt.datetime | None = Field(
        description="When the next attempt is due (pending, retrying); null once it ended"
    )
    last_error: str | None
    last_status_code: int | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    @classmethod
    def of(cls, row: DeliveryRow) -> DeliveryRead:
        return cls.model_validate(_delivery_fields(row))


def _delivery_fields(row: DeliveryRow) -> dict[str, object]:
    delivery, event_id, event_type, endpoint_public_id = row
    live = delivery.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
    return {
        "id": format_id(Kind.DELIVERY, delivery.public_id),
        "event_id": event_id,
        "event_type": event_type,
        "endpoint_id": format_id(Kind.ENDPOINT, endpoint_public_id),
        "status": delivery.status,
        "attempt_count": delivery.attempt_count,
        "cycle": delivery.cycle,
        "next_attempt_at": delivery.next_attempt_at if live else None,
        "last_error": delivery.last_error,
        "last_status_code": delivery.last_status_code,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


class DeliveryDetail(DeliveryRead):
    attempts: list[AttemptRead]

    @classmethod
    def with_attempts(cls, row: DeliveryRow, attempts: list[Attempt]) -> DeliveryDetail:
        fields = _delivery_fields(row)
        fields["attempts"] = [AttemptRead.model_validate(a) for a in attempts]
        return cls.model_validate(fields)


class DeadLetterRead(BaseModel):
    id: str = Field(examples=[Kind.DEAD_LETTER.example()])
    delivery_id: str = Field(examples=[Kind.DELIVERY.example()])
    endpoint_id: str = EndpointIdField
    event_id: str = Field(description="The publisher's event_id")
    event_type: str
    attempts: int
    last_error: str | None
    resolved: bool
    resolution: str | None = Field(description="retried or discarded, once resolved")
    created_at: dt.datetime
    resolved_at: dt.datetime | None

    @classmethod
    def of(cls, row: DeadLetterRow) -> DeadLetterRead:
        entry, event_id, delivery_public_id, endpoint_public_id = row
        return cls(
            id=format_id(Kind.DEAD_LETTER, entry.public_id),
            delivery_id=format_id(Kind.DELIVERY, delivery_public_id),
            endpoint_id=format_id(Kind.ENDPOINT, endpoint_public_id),
            event_id=event_id,
            event_type=entry.event_type,
            attempts=entry.attempts,
            last_error=entry.last_error,
            resolved=entry.resolved,
            resolution=entry.resolution,
            created_at=entry.created_at,
            resolved_at=entry.resolved_at,
        )


class DeadLetterFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_id: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=NO_NUL_PATTERN, description="`ep_…`"
    )
    event_type: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN
    )


class RetryResult(BaseModel):
    retried: int = Field(description="Dead-letter entries put back into delivery")
    delivery_ids: list[str]


def _bounded(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"payload nests deeper than {MAX_JSON_DEPTH} levels")
    return value


class TestSendCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: dict[str, Any] | None = Field(
        default=None,
        description="The test event's payload (default: a short message naming the endpoint)",
    )

    _depth = field_validator("payload")(_bounded)


class ReplayCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_ids: list[EndpointId] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Only to these endpoints (`ep_…`); an endpoint that never had a delivery "
        "of the event gets a new one. Default: every endpoint the event was delivered to.",
    )


ReplayOutcome = Literal["restarted", "created", "in_progress"]


class ReplayedRead(BaseModel):
    delivery_id: str = Field(examples=[Kind.DELIVERY.example()])
    endpoint_id: str = EndpointIdField
    outcome: ReplayOutcome = Field(
        description="restarted: a finished delivery starts a fresh cycle; created: a new "
        "delivery to an endpoint that had none; in_progress: the delivery is still live "
        "(pending or retrying), nothing was added"
    )


class ReplayResult(BaseModel):
    event_id: str = Field(description="The publisher's event_id")
    deliveries: list[ReplayedRead]
