"""All ORM tables. The schema itself is created by the Alembic migrations."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from webhookd.db import Base, UTCDateTime, utcnow
from webhookd.ids import new_id

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigID = BigInteger().with_variant(Integer(), "sqlite")


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands: `pending`: waiting for its first attempt, due now.
    `delivering`: an attempt is under way. `succeeded`: the endpoint answered 2xx.
    `retrying`: the last attempt failed and the next one is scheduled at `next_attempt_at`.
    `dead`: every attempt failed; the delivery is in the dead-letter queue."""

    PENDING = "pending"
    DELIVERING = "delivering"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # failed attempt, the next one is scheduled
    DEAD = "dead"  # retries exhausted, parked in the dead-letter queue


FAILING = "status IN ('retrying', 'dead')"  # the predicate of ix_deliveries_failing


def PublicId() -> Mapped[uuid.UUID]:  # noqa: N802 - a column, spelled like one
    """The row's public id (webhookd/ids.py): a ULID, unique, set when the row is created."""
    return mapped_column(Uuid(), unique=True, default=new_id)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    public_id: Mapped[uuid.UUID] = PublicId()
    # The adopter's own id for this tenant (e.g. its customer id), usable wherever a tenant
    # id is; unique per deployment.
    uid: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    rate_limit: Mapped[int] = mapped_column(Integer)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_prefix: Mapped[str] = mapped_column(String(16))
    # Signing secrets, Fernet-encrypted. During a rotation the previous secret keeps signing
    # (a second signature) until previous_secret_expires_at.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Endpoint(Base):
    __tablename__ = "endpoints"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    public_id: Mapped[uuid.UUID] = PublicId()
    tenant_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("tenant_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    public_id: Mapped[uuid.UUID] = PublicId()
    tenant_id: Mapped[int] = mapped_column(BigID, ForeignKey("tenants.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    payload: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        # The dispatcher's claim query: due rows by time, among the claimable states.
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("next_attempt_at IS NOT NULL"),
            postgresql_where=text("next_attempt_at IS NOT NULL"),
        ),
        # The claim order: live rows by queue_key (fair across tenants, see
        # delivery/fairness.py), with the columns the claim filters on, so that skipping
        # leased rows and saturated endpoints never reads the table.
        Index(
            "ix_deliveries_queue",
            "queue_key",
            "next_attempt_at",
            "endpoint_id",
            sqlite_where=text("next_attempt_at IS NOT NULL"),
            postgresql_where=text("next_attempt_at IS NOT NULL"),
        ),
        Index("ix_deliveries_event_id", "event_id"),
        # Listings, newest first: an endpoint's deliveries; and a tenant's failing ones
        # ("what is failing right now"), in an index that only failing rows enter, so the
        # deliveries that succeed at once never touch it.
        Index("ix_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index(
            "ix_deliveries_failing",
            "tenant_id",
            "status",
            "id",
            sqlite_where=text(FAILING),
            postgresql_where=text(FAILING),
        ),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    public_id: Mapped[uuid.UUID] = PublicId()
    tenant_id: Mapped[int] = mapped_column(BigID, ForeignKey("tenants.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigID, ForeignKey("events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(BigID, ForeignKey("endpoints.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Position in the claim order, in microseconds (see delivery/fairness.py).
    queue_key: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    attempt_number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float] = mapped_column()
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_tenant_id_resolved", "tenant_id", "resolved"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    public_id: Mapped[uuid.UUID] = PublicId()
    tenant_id: Mapped[int] = mapped_column(BigID, ForeignKey("tenants.id", ondelete="CASCADE"))
    delivery_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[int] = mapped_column(BigID, ForeignKey("endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigID, ForeignKey("events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
