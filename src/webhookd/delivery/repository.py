"""Delivery state in the database: claim due work with a lease, record outcomes in batches.

Invariant: ``next_attempt_at`` is set exactly while a delivery is live (pending, failed or
delivering); a partial index on it holds only live rows, so claiming costs the same whatever
the history. A claimed row's ``next_attempt_at`` is its lease expiry: if the worker dies,
the row simply becomes due again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webhookd import metrics
from webhookd.db import utcnow
from webhookd.delivery.attempt import Job, Outcome
from webhookd.delivery.retry import RetryPolicy, next_delay
from webhookd.models import Attempt, DeadLetter, Delivery, DeliveryStatus, Endpoint, Event, Tenant
from webhookd.security import SecretBox


async def claim_due(
    session: AsyncSession,
    *,
    owner: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
    box: SecretBox,
    ids: Sequence[int] | None = None,
) -> list[Job]:
    """Lease up to ``limit`` due deliveries (only among ``ids`` if given) to ``owner`` and
    load what sending them needs. Rows leased by someone else are not due: skipped."""
    due = (
        select(Delivery.id)
        .where(Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    if ids is not None:
        due = due.where(Delivery.id.in_(ids))
    if session.bind.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    lease_until = now + lease
    claimed = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(
            status=DeliveryStatus.DELIVERING,
            lease_owner=owner,
            lease_expires_at=lease_until,
            next_attempt_at=lease_until,
            updated_at=now,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = [row[0] for row in claimed]
    if not ids:
        return []
    return await load_jobs(session, ids, box=box, now=now)


def _signing_secrets(row: Any, box: SecretBox, now: dt.datetime) -> tuple[str, ...]:
    current = box.decrypt_cached(row.secret_encrypted)
    expires = row.previous_secret_expires_at
    if row.previous_secret_encrypted and expires is not None and expires > now:
        return (current, box.decrypt_cached(row.previous_secret_encrypted))
    return (current,)


async def load_jobs(
    session: AsyncSession, ids: Sequence[int], *, box: SecretBox, now: dt.datetime
) -> list[Job]:
    rows = await session.execute(
        select(
            Delivery.id,
            Delivery.tenant_id,
            Delivery.endpoint_id,
            Delivery.event_id.label("event_pk"),
            Endpoint.url,
            Tenant.secret_encrypted,
            Tenant.previous_secret_encrypted,
            Tenant.previous_secret_expires_at,
            Event.event_id,
            Event.event_type,
            Event.payload,
            Event.created_at,
            Delivery.attempt_count,
            Delivery.cycle,
        )
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .join(Event, Event.id == Delivery.event_id)
        .join(Tenant, Tenant.id == Delivery.tenant_id)
        .where(Delivery.id.in_(ids))
        .order_by(Delivery.id)
    )
    return [
        Job(
            delivery_id=r.id,
            tenant_id=r.tenant_id,
            endpoint_id=r.endpoint_id,
            event_pk=r.event_pk,
            url=r.url,
            secrets=_signing_secrets(r, box, now),
            event_id=r.event_id,
            event_type=r.event_type,
            payload=r.payload,
            created_at=r.created_at,
            attempt_number=r.attempt_count + 1,
            cycle=r.cycle,
        )
        for r in rows
    ]


# Finish a claimed attempt, only if this owner still holds the lease of this cycle.
_FINISH_ATTEMPT = (
    update(Delivery)
    .where(
        Delivery.id == bindparam("b_id"),
        Delivery.lease_owner == bindparam("b_owner"),
        Delivery.status == DeliveryStatus.DELIVERING,
        Delivery.cycle == bindparam("b_cycle"),
    )
    .values(
        status=bindparam("b_status"),
        attempt_count=bindparam("b_attempts"),
        lease_owner=None,
        lease_expires_at=None,
        last_status_code=bindparam("b_code"),
        updated_at=bindparam("b_now"),
        next_attempt_at=bindparam("b_next"),
        delivered_at=bindparam("b_delivered"),
        last_error=bindparam("b_error"),
    )
)
_INSERT_ATTEMPTS = insert(Attempt)
_INSERT_DEAD_LETTERS = insert(DeadLetter)


@dataclass(frozen=True, slots=True)
class Recorded:
    outcome: Outcome
    status: DeliveryStatus
    retry_in: float | None  # seconds until the next attempt, for failed deliveries


async def record_outcomes(
    session: AsyncSession,
    *,
    owner: str,
    outcomes: Sequence[Outcome],
    policy: RetryPolicy,
    now: dt.datetime,
) -> list[Recorded]:
    """Write each attempt and move its delivery on. Deliveries whose lease this owner lost
    (expired and re-claimed, or deleted with their endpoint) are skipped."""
    conn = await session.connection()
    recorded: list[Recorded] = []
    for outcome in outcomes:
        job = outcome.job
        retry_in: float | None = None
        if outcome.succeeded:
            status, next_at, error = DeliveryStatus.SUCCEEDED, None, None
        else:
            retry_in = next_delay(policy, job.attempt_number, retry_after=outcome.retry_after)
            status = DeliveryStatus.DEAD if retry_in is None else DeliveryStatus.FAILED
            next_at = None if retry_in is None else now + dt.timedelta(seconds=retry_in)
            error = outcome.summary[:1000]
        result = await conn.execute(
            _FINISH_ATTEMPT,
            {
                "b_id": job.delivery_id,
                "b_owner": owner,
                "b_cycle": job.cycle,
                "b_status": status,
                "b_attempts": job.attempt_number,
                "b_code": outcome.response_status,
                "b_now": now,
                "b_next": next_at,
                "b_delivered": now if outcome.succeeded else None,
                "b_error": error,
            },
        )
        if result.rowcount == 1:
            recorded.append(Recorded(outcome, status, retry_in))
    if not recorded:
        return recorded
    await conn.execute(
        _INSERT_ATTEMPTS,
        [
            {
                "delivery_id": r.outcome.job.delivery_id,
                "cycle": r.outcome.job.cycle,
                "attempt_number": r.outcome.job.attempt_number,
                "started_at": r.outcome.started_at,
                "duration_ms": round(r.outcome.duration_ms, 3),
                "response_status": r.outcome.response_status,
                "response_body": r.outcome.response_body,
                "error_kind": r.outcome.error_kind,
                "error_message": r.outcome.error_message,
                "succeeded": r.outcome.succeeded,
            }
            for r in recorded
        ],
    )
    dead = [r for r in recorded if r.status == DeliveryStatus.DEAD]
    if dead:
        await conn.execute(
            _INSERT_DEAD_LETTERS,
            [
                {
                    "tenant_id": r.outcome.job.tenant_id,
                    "delivery_id": r.outcome.job.delivery_id,
                    "endpoint_id": r.outcome.job.endpoint_id,
                    "event_id": r.outcome.job.event_pk,
                    "event_type": r.outcome.job.event_type,
                    "attempts": r.outcome.job.attempt_number,
                    "last_error": r.outcome.summary[:1000],
                    "resolved": False,
                    "created_at": now,
                }
                for r in dead
            ],
        )
    return recorded


async def release_leases(session: AsyncSession, *, owner: str, now: dt.datetime) -> int:
    """Make this owner's unfinished claims due again at once (graceful shutdown)."""
    result = await session.execute(
        update(Delivery)
        .where(Delivery.lease_owner == owner, Delivery.status == DeliveryStatus.DELIVERING)
        .values(next_attempt_at=now, lease_expires_at=now, lease_owner=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def count_due(session: AsyncSession, *, now: dt.datetime) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.next_attempt_at <= now)
        )
        or 0
    )


async def count_unresolved_dead_letters(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(DeadLetter).where(DeadLetter.resolved.is_(False))
        )
        or 0
    )


async def refresh_gauges(session: AsyncSession) -> None:
    """Set the gauges that describe database state (DLQ size, due backlog) from the database."""
    metrics.DLQ_SIZE.set(await count_unresolved_dead_letters(session))
    metrics.DELIVERIES_DUE.set(await count_due(session, now=utcnow()))
