from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from webhookd.schemas import EVENT_TYPE_PATTERN, MAX_ID, ReadModel


class AttemptRead(ReadModel):
    cycle: int
    attempt_number: int
    started_at: dt.datetime
    duration_ms: float
    succeeded: bool
    response_status: int | None
    response_body: str | None = Field(description="First 4 KB of the receiver's answer")
    error_kind: str | None = Field(
        description="timeout, connection, tls, refused_target, http_status, invalid_url"
    )
    error_message: str | None


class DeadLetterRead(ReadModel):
    id: int
    delivery_id: int
    endpoint_id: int
    event_id: str = Field(description="The publisher's event_id")
    event_type: str
    attempts: int
    last_error: str | None
    resolved: bool
    resolution: str | None = Field(description="retried or discarded, once resolved")
    created_at: dt.datetime
    resolved_at: dt.datetime | None


class DeadLetterFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_id: int | None = Field(default=None, ge=0, le=MAX_ID)
    event_type: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=EVENT_TYPE_PATTERN
    )


class RetryResult(BaseModel):
    retried: int = Field(description="Dead-letter entries put back into delivery")
    delivery_ids: list[int]
