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
    Float,
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
# A live delivery: not finished (the predicate of ix_deliveries_open). A live row with no
# next_attempt_at is waiting: for its endpoint to be enabled, or for its turn (FIFO).
OPEN = "status IN ('pending', 'delivering', 'retrying')"
LIVE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING, DeliveryStatus.RETRYING)


class Ordering(enum.StrEnum):
    UNORDERED = "unordered"
    FIFO = "fifo"  # one delivery at a time, in publish order


class Circuit(enum.StrEnum):
    CLOSED = "closed"  # deliveries go out
    OPEN = "open"  # none go out until circuit_until
    HALF_OPEN = "half_open"  # one probe is out; its result closes or reopens the circuit


class DisabledReason(enum.StrEnum):
    GONE = "gone"  # the endpoint answered 410
    FAILING = "failing"  # no success for WEBHOOKD_AUTO_DISABLE_AFTER


class EndpointKind(enum.StrEnum):
    WEBHOOK = "webhook"
    # The tenant's operational webhook (tenant.operational_webhook_url): hidden from the
    # endpoint API, never routed published events.
    OPERATIONAL = "operational"


class DeliveryFormat(enum.StrEnum):
    WEBHOOKD = "webhookd"  # {"event_id", "event_type", "payload", "created_at"}
    SVIX = "svix"  # the payload as the body; svix-id/-timestamp/-signature headers too


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
    # Where webhookd sends the tenant endpoint.disabled / endpoint.enabled /
    # delivery.dead_lettered notices (docs/DELIVERY.md).
    operational_webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    # Refuse publishes of event types that are not in the tenant's catalog (event_types).
    strict_event_types: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    # Days its events (with their deliveries, attempts and dead letters) are kept; null:
    # WEBHOOKD_RETENTION_DAYS (docs/RECOVERY.md).
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The tenant portal (/portal): the origins that may embed it in a frame, its colour
    # (#rrggbb) and logo.
    portal_frame_ancestors: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    portal_brand_color: Mapped[str | None] = mapped_column(String(7), nullable=True)
    portal_logo_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    # What a delivery's body is: the webhookd envelope, or (Svix) the payload alone with
    # svix-* headers beside webhook-* (delivery/attempt.py).
    delivery_format: Mapped[str] = mapped_column(
        String(16), default=DeliveryFormat.WEBHOOKD, server_default=DeliveryFormat.WEBHOOKD.value
    )
    # Free key/value labels (a Svix application's metadata; "metadata" is Base's name).
    labels: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


CIRCUIT_NOT_CLOSED = "circuit <> 'closed'"


class Endpoint(Base):
    __tablename__ = "endpoints"
    # The endpoints whose breaker is open or half-open (few): the probe search reads only these.
    __table_args__ = (
        Index(
            "ix_endpoints_circuit",
            "circuit_until",
            sqlite_where=text(CIRCUIT_NOT_CLOSED),
            postgresql_where=text(CIRCUIT_NOT_CLOSED),
        ),
        UniqueConstraint("tenant_id", "uid"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    public_id: Mapped[uuid.UUID] = PublicId()
    tenant_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # A payload filter (delivery/filters.py): events whose payload does not match are not
    # routed to this endpoint. Null: every payload.
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    kind: Mapped[str] = mapped_column(
        String(16), default=EndpointKind.WEBHOOK, server_default=EndpointKind.WEBHOOK.value
    )
    # Delivery policy (docs/DELIVERY.md); null: the global default.
    retry_schedule: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    rate_limit: Mapped[float | None] = mapped_column(Float, nullable=True)  # deliveries/s
    headers_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)  # Fernet, JSON
    ordering: Mapped[str] = mapped_column(
        String(16), default=Ordering.UNORDERED, server_default=Ordering.UNORDERED.value
    )
    # Health, shared by every delivering process (delivery/health.py).
    disabled_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    circuit: Mapped[str] = mapped_column(
        String(16), default=Circuit.CLOSED, server_default=Circuit.CLOSED.value
    )
    circuit_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    circuit_cooldown: Mapped[float | None] = mapped_column(Float, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The adopter's own id for the endpoint (unique in its tenant), usable wherever its id is.
    uid: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Free key/value labels ("metadata": the name Base keeps for the schema's MetaData).
    labels: Mapped[dict[str, str] | None] = mapped_column("metadata", JSON, nullable=True)
    # Only events published with one of these channels come here; null: every event.
    channels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # The endpoint's own signing secret, Fernet-encrypted, rotated like the tenant's; null:
    # the endpoint signs with its tenant's secret.
    secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class EventTypeDef(Base):
    """An event type of a tenant's catalog, with the JSON Schema its payloads must meet; or,
    without a tenant, of the deployment's catalog (the Svix API's event types)."""

    __tablename__ = "event_types"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(
        BigID, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id"),
        # What the retention purge looks for: events older than a date. Rows arrive in
        # time order, so PostgreSQL keeps a BRIN index (a few pages, next to no cost per
        # insert); SQLite a b-tree, appended at its end.
        Index("ix_events_created_at", "created_at", postgresql_using="brin"),
        # The event log (console, portal, GET /api/v1/events): a tenant's events newest
        # first, by type, or in a time window, each read in the listing's order from its
        # keyset cursor (docs/BENCHMARKS.md, "Console pages with 1M events").
        Index("ix_events_tenant_id_id", "tenant_id", "id"),
        Index("ix_events_tenant_id_event_type_id", "tenant_id", "event_type", "id"),
        Index("ix_events_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    public_id: Mapped[uuid.UUID] = PublicId()
    tenant_id: Mapped[int] = mapped_column(BigID, ForeignKey("tenants.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(255))
    payload: Mapped[Any] = mapped_column(JSON)
    # An operational notice to the tenant (endpoint.disabled, ...): not listed in the API.
    operational: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Endpoints with channels get the event only if it carries one of theirs.
    channels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        # An endpoint's live deliveries in publish order: the head of a FIFO endpoint, the
        # rows a breaker defers or an enable releases.
        Index(
            "ix_deliveries_open",
            "endpoint_id",
            "id",
            sqlite_where=text(OPEN),
            postgresql_where=text(OPEN),
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
    __table_args__ = (
        Index("ix_dead_letters_tenant_id_resolved", "tenant_id", "resolved"),
        # An endpoint's entries in order: what a recovery job walks.
        Index("ix_dead_letters_endpoint_id_id", "endpoint_id", "id"),
        # The entries of events: deleting an event (retention) finds its entries by index.
        Index("ix_dead_letters_event_id", "event_id"),
    )

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


class JobStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for a runner
    RUNNING = "running"  # a runner holds it (lease) or will take it up again
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # stopped on an error (``error``)


class JobKind(enum.StrEnum):
    RECOVER = "recover"  # resend an endpoint's dead-lettered deliveries of a time window
    # retry the unresolved dead-letter entries matching a filter (the console's "retry all")
    RETRY_DEAD_LETTERS = "retry_dead_letters"


JOB_OPEN = "status IN ('queued', 'running')"


class BackgroundJob(Base):
    """Work run in batches by the job runner of a delivering process (webhookd/jobs/),
    resumable from ``cursor`` by any process once the lease of the one running it ends."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_open", "id", sqlite_where=text(JOB_OPEN), postgresql_where=text(JOB_OPEN)),
        Index("ix_jobs_tenant_id_id", "tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    public_id: Mapped[uuid.UUID] = PublicId()
    tenant_id: Mapped[int] = mapped_column(BigID, ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    # The endpoint it works on (no foreign key: a job outlives a deleted endpoint, and then
    # finds nothing left to do).
    endpoint_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)  # counted when it starts
    done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cursor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class MetricSample(Base):
    """What one process counted over one sampling period (``stats/sampler.py``): the history
    the console's charts are drawn from, from the same counters as ``/metrics``."""

    __tablename__ = "metric_samples"
    __table_args__ = (Index("ix_metric_samples_at", "at"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    process: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the end of the period
    seconds: Mapped[float] = mapped_column(Float)  # its length
    events: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    # Attempts per duration bucket (metrics.DURATION_BUCKETS, then +Inf), not cumulative.
    durations: Mapped[list[int]] = mapped_column(JSON)
    # Database state at the end of the period (the API process reads it; null elsewhere).
    backlog: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dead_letters: Mapped[int | None] = mapped_column(Integer, nullable=True)


class PortalToken(Base):
    """A one-time link into the tenant portal (``POST /api/v1/portal-sessions``): only its
    hash is kept; it is exchanged once for a portal session, before ``expires_at``, and
    only while the tenant's API key is the one it was issued under."""

    __tablename__ = "portal_tokens"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigID, ForeignKey("tenants.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # the scope
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotentResponse(Base):
    """The answer given to a POST with an ``idempotency-key`` header (the Svix API), given
    again for the same key and caller within a day."""

    __tablename__ = "idempotent_responses"
    __table_args__ = (
        UniqueConstraint("caller", "key"),
        Index("ix_idempotent_responses_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    caller: Mapped[str] = mapped_column(String(64))  # "admin" or the tenant's public id
    key: Mapped[str] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
