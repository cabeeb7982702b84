"""Delivery state in the database: claim due work with a lease, record outcomes in batches.

Invariant: ``next_attempt_at`` is set exactly while a delivery is live (pending, failed or
delivering); a partial index on it holds only live rows, so claiming costs the same whatever
the history. A claimed row's ``next_attempt_at`` is its lease expiry: if the worker dies,
the row simply becomes due again.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from webhookd import metrics
from webhookd.db import UTCDateTime, driver_converter, utcnow
from webhookd.delivery.attempt import Job, Outcome
from webhookd.delivery.fairness import to_key
from webhookd.delivery.retry import RetryPolicy, next_delay
from webhookd.models import Attempt, DeadLetter, Delivery, DeliveryStatus, Endpoint, Event, Tenant
from webhookd.security import SecretBox


@functools.cache
def _claim_candidates(*, skip_saturated: bool, postgres: bool) -> Select[tuple[int, int]]:
    """Due deliveries in claim order (``queue_key``), skipping endpoints already at their cap.

    The partial index ``ix_deliveries_queue`` holds every column this filters on, so rows
    that are leased or belong to a saturated endpoint are skipped without reading the table.
    Statements are built once per shape: building one costs more than running it.
    """
    query = (
        select(Delivery.id, Delivery.endpoint_id)
        .where(Delivery.next_attempt_at <= bindparam("now", type_=UTCDateTime()))
        .order_by(Delivery.queue_key)
        .limit(bindparam("scan", type_=Integer()))
    )
    if skip_saturated:
        query = query.where(Delivery.endpoint_id.not_in(bindparam("saturated", expanding=True)))
    if postgres:
        query = query.with_for_update(skip_locked=True)
    return query


_LEASE = (
    update(Delivery)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=DeliveryStatus.DELIVERING,
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("until"),
        next_attempt_at=bindparam("until"),
        updated_at=bindparam("now"),
    )
)


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
    search_past_saturated: bool = True,
) -> Claim:
    """Lease up to ``limit`` due deliveries to ``owner`` and load what sending them needs.
    Rows leased by someone else are not due: skipped.

    With ``endpoint_cap``, no endpoint gets more than the cap in flight counting
    ``in_flight`` (this process's attempts per endpoint): a slow endpoint holds at most
    that many slots, never the whole engine. What does not fit stays due for later; the
    endpoints it belongs to (and those already at their cap) are in ``Claim.held_back``,
    so that the engine claims again when they have room.

    Looking past the rows of endpoints at their cap (``endpoint_id NOT IN (...)``) reads
    the index until it finds ``2 × limit`` other rows, so when the rest of the due work is
    small it reads every row of the saturated endpoints: the whole backlog of a slow
    endpoint. ``Claim.exhausted`` says such a search saw all the other due work; until new
    work may have come (a publish, a retry falling due, the poll) the engine passes
    ``search_past_saturated=False`` and the claim reads only the head of the queue.
    """
    busy = dict(in_flight or {})
    saturated = (
        sorted(e for e, n in busy.items() if n >= endpoint_cap) if endpoint_cap is not None else []
    )
    scan = limit * 2 if endpoint_cap is not None else limit  # room for rows the caps skip
    search = bool(saturated) and search_past_saturated
    query = _claim_candidates(skip_saturated=search, postgres=conn.dialect.name == "postgresql")
    params: dict[str, Any] = {"now": now, "scan": scan}
    if search:
        params["saturated"] = saturated
    chosen: list[int] = []
    held_back = set(saturated)
    rows = (await conn.execute(query, params)).all()
    for delivery_id, endpoint_id in rows:
        if endpoint_cap is not None:
            if busy.get(endpoint_id, 0) >= endpoint_cap:
                held_back.add(endpoint_id)
                continue
            busy[endpoint_id] = busy.get(endpoint_id, 0) + 1
        chosen.append(delivery_id)
        if len(chosen) == limit:
            break
    # Every due row outside the saturated endpoints was read, and all of them were taken.
    exhausted = search and len(rows) < scan and len(chosen) == len(rows)
    if not chosen:
        return Claim([], held_back, exhausted)
    await conn.execute(_LEASE, {"ids": chosen, "owner": owner, "until": now + lease, "now": now})
    return Claim(await load_jobs(conn, chosen, box=box, now=now), held_back, exhausted)


@dataclass(slots=True)
class Claim:
    jobs: list[Job]
    held_back: set[int]  # endpoints with due rows (possibly) left behind by their cap
    exhausted: bool = False  # no other due rows than those of the saturated endpoints


def _signing_secrets(row: Any, box: SecretBox, now: dt.datetime) -> tuple[str, ...]:
    current = box.decrypt_cached(row.secret_encrypted)
    expires = row.previous_secret_expires_at
    if row.previous_secret_encrypted and expires is not None and expires > now:
        return (current, box.decrypt_cached(row.previous_secret_encrypted))
    return (current,)


_LOAD_JOBS = (
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
    .where(Delivery.id.in_(bindparam("ids", expanding=True)))
    .order_by(Delivery.id)
)


async def load_jobs(
    conn: AsyncConnection, ids: Sequence[int], *, box: SecretBox, now: dt.datetime
) -> list[Job]:
    rows = await conn.execute(_LOAD_JOBS, {"ids": list(ids)})
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


def _held_query(postgres: bool) -> Select[tuple[int, int]]:
    query = select(Delivery.id, Delivery.cycle).where(
        Delivery.id.in_(bindparam("ids", expanding=True)),
        Delivery.lease_owner == bindparam("owner"),
        Delivery.status == DeliveryStatus.DELIVERING,
    )
    return query.with_for_update() if postgres else query  # nobody re-claims them meanwhile


_HELD = {False: _held_query(False), True: _held_query(True)}


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
    postgres = conn.dialect.name == "postgresql"
    held_rows = await conn.execute(
        _HELD[postgres], {"ids": [o.job.delivery_id for o in outcomes], "owner": owner}
    )
    held = {row[0]: row[1] for row in held_rows}
    finished = [
        _finish_params(o, owner, policy, now)
        for o in outcomes
        if held.get(o.job.delivery_id) == o.job.cycle
    ]
    if not finished:
        return []
    recorded = [r for r, _ in finished]
    attempts = [_attempt_row(r.outcome) for r in recorded]
    if postgres:
        await conn.execute(_FINISH_ATTEMPT, [params for _, params in finished])
        await conn.execute(_INSERT_ATTEMPTS, attempts)
    else:
        await _sqlite_record(conn, [params for _, params in finished], attempts)
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


def _attempt_row(outcome: Outcome) -> dict[str, Any]:
    return {
        "delivery_id": outcome.job.delivery_id,
        "cycle": outcome.job.cycle,
        "attempt_number": outcome.job.attempt_number,
        "started_at": outcome.started_at,
        "duration_ms": round(outcome.duration_ms, 3),
        "response_status": outcome.response_status,
        "response_body": outcome.response_body,
        "error_kind": outcome.error_kind,
        "error_message": outcome.error_message,
        "succeeded": outcome.succeeded,
    }


# SQLite: the two per-row statements as plain SQL on the driver connection (executemany).
# SQLAlchemy's per-row parameter processing cost more than SQLite itself; datetimes go
# through the columns' own converter, so rows are stored exactly as SQLAlchemy stores them.
_SQLITE_FINISH = (
    "UPDATE deliveries SET status = ?, attempt_count = ?, lease_owner = NULL, "
    "lease_expires_at = NULL, last_status_code = ?, updated_at = ?, next_attempt_at = ?, "
    "queue_key = ?, delivered_at = ?, last_error = ? "
    "WHERE id = ? AND lease_owner = ? AND status = 'delivering' AND cycle = ?"
)
_ATTEMPT_COLUMNS = (
    "delivery_id",
    "cycle",
    "attempt_number",
    "started_at",
    "duration_ms",
    "response_status",
    "response_body",
    "error_kind",
    "error_message",
    "succeeded",
)
_SQLITE_INSERT_ATTEMPTS = (
    f"INSERT INTO attempts ({', '.join(_ATTEMPT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_ATTEMPT_COLUMNS))})"
)


async def _sqlite_record(
    conn: AsyncConnection, finishes: list[dict[str, Any]], attempts: list[dict[str, Any]]
) -> None:
    stamp = driver_converter(conn, Delivery.__table__.c.updated_at)

    @functools.cache  # most rows share `now`
    def when(value: dt.datetime | None) -> Any:
        return None if value is None else stamp(value)

    driver = (await conn.get_raw_connection()).driver_connection
    await driver.executemany(
        _SQLITE_FINISH,
        [
            (
                str(f["b_status"]),
                f["b_attempts"],
                f["b_code"],
                when(f["b_now"]),
                when(f["b_next"]),
                f["b_key"],
                when(f["b_delivered"]),
                f["b_error"],
                f["b_id"],
                f["b_owner"],
                f["b_cycle"],
            )
            for f in finishes
        ],
    )
    await driver.executemany(
        _SQLITE_INSERT_ATTEMPTS,
        [
            tuple(
                when(a[c]) if c == "started_at" else int(a[c]) if c == "succeeded" else a[c]
                for c in _ATTEMPT_COLUMNS
            )
            for a in attempts
        ],
    )


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
