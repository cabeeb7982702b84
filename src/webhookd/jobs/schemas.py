from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webhookd.ids import Kind, format_id
from webhookd.models import BackgroundJob, JobKind, JobStatus


def as_utc(value: dt.datetime) -> dt.datetime:
    """A moment in UTC (a time without an offset is taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


class RecoverCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: dt.datetime = Field(
        description="Resend what was dead-lettered from this moment on (ISO 8601; UTC when "
        "no offset is given)",
        examples=["2026-12-01T00:00:00Z"],
    )
    until: dt.datetime | None = Field(
        default=None, description="… up to this moment (default: now)"
    )

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else as_utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> RecoverCreate:
        if self.until is not None and self.until < self.since:
            raise ValueError("until must not be before since")
        return self


class JobRead(BaseModel):
    id: str = Field(examples=[Kind.JOB.example()])
    tenant_id: str = Field(examples=[Kind.TENANT.example()])
    kind: JobKind
    status: JobStatus = Field(
        description="queued, running, succeeded, failed (see `error`); a job whose process "
        "stopped is taken up again from where it was by another process"
    )
    endpoint_id: str | None = Field(examples=[Kind.ENDPOINT.example()])
    params: dict[str, Any] = Field(
        description="What the job was asked: since, until (recover); event_type, until "
        "(retry_dead_letters: the entries dead-lettered until then)"
    )
    total: int | None = Field(
        description="Items to handle, counted when the job was created; once it finished, "
        "the items it handled (an entry resolved meanwhile by someone else is not counted)"
    )
    done: int = Field(description="Items handled successfully (deliveries sent again)")
    failed: int = Field(
        description="Items that could not be handled (their delivery was no longer dead)"
    )
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime

    @classmethod
    def of(cls, job: BackgroundJob, tenant_ref: str) -> JobRead:
        endpoint = job.params.get("endpoint_id")
        return cls(
            id=format_id(Kind.JOB, job.public_id),
            tenant_id=tenant_ref,
            kind=JobKind(job.kind),
            status=JobStatus(job.status),
            endpoint_id=endpoint if isinstance(endpoint, str) else None,
            params={k: v for k, v in job.params.items() if k != "endpoint_id"},
            total=job.total,
            done=job.done,
            failed=job.failed,
            error=job.error,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            updated_at=job.updated_at,
        )
