"""Delivery state in the database: claim due work with a lease, record outcomes in batches.

Invariant: ``next_attempt_at`` is set exactly while a delivery is live (pending, failed or
delivering); a partial index on it holds only live rows, so claiming costs the same whatever
the history. A claimed row's ``next_attempt_at`` is its lease expiry: if the worker dies,
the row simply becomes due again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from webhookd import metrics
from webhookd.db import utcnow
from webhookd.delivery.attempt import Job, Outcome
from webhookd.delivery.fairness import to_key
from webhookd.delivery.retry import RetryPolicy, next_delay
from webhookd.models import Attempt, DeadLetter, Delivery, DeliveryStatus, Endpoint, Event, Tenant
from webhookd.security import SecretBox


def _claim_candidates(
    *, saturated: Sequence[int], scan: int, postgres: bool
) -> Select[tuple[int, int]]:
    """Due deliveries in claim order (``queue_key``), skipping endpoints already at their cap.

    The partial index ``ix_deliveries_queue`` holds every column this filters on, so rows
    that are leased or belong to a saturated endpoint are skipped without reading the table.
    """
    query = (
        select(Delivery.id, Delivery.endpoint_id)
        .where(Delivery.next_attempt_at <= bindparam("now"))
        .order_by(Delivery.queue_key)
        .limit(scan)
    )
    if saturated:
        query = query.where(Delivery.endpoint_id.not_in(saturated))
    if postgres:
        query = query.with_for_update(skip_locked=True)
    return query


async def claim_due(
    conn: AsyncConnection,
    *,
    owner: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
    box: SecretBox,
    in_flight: Mapping[int, int] | None = None,
    endpoint_cap: int | None = None,
) -> list[Job]:
    """Lease up to ``limit`` due deliveries to ``owner`` and load what sending them needs.
    Rows leased by someone else are not due: skipped.

    With ``endpoint_cap``, no endpoint gets more than the cap in flight counting
    ``in_flight`` (this process's attempts per endpoint): a slow endpoint holds at most
    that many slots, never the whole engine. What does not fit stays due for later.
    """
    busy = dict(in_flight or {})
    saturated = (
        sorted(e for e, n in busy.items() if n >= endpoint_cap) if endpoint_cap is not None else []
    )
    scan = limit * 2 if endpoint_cap is not None else limit  # room for rows the caps skip
    candidates = await conn.execute(
        _claim_candidates(
            saturated=saturated, scan=scan, postgres=conn.dialect.name == "postgresql"
        ),
        {"now": now},
    )
    chosen: list[int] = []
    for delivery_id, endpoint_id in candidates:
        if endpoint_cap is not None:
            if busy.get(endpoint_id, 0) >= endpoint_cap:
                continue
            busy[endpoint_id] = busy.get(endpoint_id, 0) + 1
        chosen.append(delivery_id)
        if len(chosen) == limit:
            break
    if not chosen:
        return []
    lease_until = now + lease
    await conn.execute(
        update(Delivery)
        .where(Delivery.id.in_(chosen))
        .values(
            status=DeliveryStatus.DELIVERING,
            lease_owner=owner,
            lease_expires_at=lease_until,
            next_attempt_at=lease_until,
            updated_at=now,
        )
    )
    return await load_jobs(conn, chosen, box=box, now=now)


def _signing_secrets(row: Any, box: SecretBox, now: dt.datetime) -> tuple[str, ...]:
    current = box.decrypt_cached(row.secret_encrypted)
    expires = row.previous_secret_expires_at
    if row.previous_secret_encrypted and expires is not None and expires > now:
        return (current, box.decrypt_cached(row.previous_secret_encrypted))
    return (current,)


async def load_jobs(
    conn: AsyncConnection, ids: Sequence[int], *, box: SecretBox, now: dt.datetime
) -> list[Job]:
    rows = await conn.execute(
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
            Delivery.queue_key,
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
            queue_key=r.queue_key,
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
        queue_key=bindparam("b_key"),
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


def _finish_params(
    outcome: Outcome, owner: str, policy: RetryPolicy, now: dt.datetime
) -> tuple[Recorded, dict[str, Any]]:
    job = outcome.job
    retry_in: float | None = None
    if outcome.succeeded:
        status, next_at, error = DeliveryStatus.SUCCEEDED, None, None
    else:
        retry_in = next_delay(policy, job.attempt_number, retry_after=outcome.retry_after)
        status = DeliveryStatus.DEAD if retry_in is None else DeliveryStatus.FAILED
        next_at = None if retry_in is None else now + dt.timedelta(seconds=retry_in)
        error = outcome.summary[:1000]
    params = {
        "b_id": job.delivery_id,
        "b_owner": owner,
        "b_cycle": job.cycle,
        "b_status": status,
        "b_attempts": job.attempt_number,
        "b_code": outcome.response_status,
        "b_now": now,
        "b_next": next_at,
        # a retry waits its turn from when it falls due, like an event published then
        "b_key": to_key(next_at) if next_at is not None else job.queue_key,
        "b_delivered": now if outcome.succeeded else None,
        "b_error": error,
    }
    return Recorded(outcome, status, retry_in), params


async def record_outcomes(
    conn: AsyncConnection,
    *,
    owner: str,
    outcomes: Sequence[Outcome],
    policy: RetryPolicy,
    now: dt.datetime,
) -> list[Recorded]:
    """Write each attempt and move its delivery on, in a few statements for the whole batch.
    Deliveries whose lease this owner lost (expired and re-claimed, or deleted with their
    endpoint) are skipped."""
    held_query = select(Delivery.id, Delivery.cycle).where(
        Delivery.id.in_([o.job.delivery_id for o in outcomes]),
        Delivery.lease_owner == owner,
        Delivery.status == DeliveryStatus.DELIVERING,
    )
    if conn.dialect.name == "postgresql":
        held_query = held_query.with_for_update()  # nobody re-claims them until we commit
    held = {row[0]: row[1] for row in await conn.execute(held_query)}
    finished = [
        _finish_params(o, owner, policy, now)
        for o in outcomes
        if held.get(o.job.delivery_id) == o.job.cycle
    ]
    if not finished:
        return []
    await conn.execute(_FINISH_ATTEMPT, [params for _, params in finished])
    recorded = [r for r, _ in finished]
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
    """Make this owner's unfinished claims due again at once (graceful shutdown). They keep
    their queue_key: the next worker takes them first."""
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
