"""What both databases share: the statements of the delivery store, built once from the
models, and :class:`CoreStore`, which runs them through SQLAlchemy Core.

Statements are built once per shape (building one costs more than running it). A
subclass supplies what differs: how a batch of rows is inserted and how the ends of
attempts are written.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    Update,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable

from webhookd.db import UTCDateTime
from webhookd.delivery import lifecycle
from webhookd.delivery.headers import decode_headers
from webhookd.delivery.health import (
    HEALTH_COLUMNS,
    HEALTHY,
    Change,
    Gate,
    Health,
    Result,
    after_results,
    gate,
    probing,
)
from webhookd.delivery.health import held as is_held
from webhookd.delivery.job import Job, Outcome
from webhookd.delivery.lifecycle import ATTEMPT_END_COLUMNS, GONE, PUT_BACK_COLUMNS, Transition
from webhookd.delivery.policy import EndpointPolicy
from webhookd.delivery.store import endpoints
from webhookd.delivery.store.retention import RetentionStore
from webhookd.delivery.store.types import (
    Claim,
    DeliveryRef,
    InsertedEvent,
    NewDelivery,
    NewEvent,
    PutBack,
    Recorded,
    Route,
    RoutingTable,
)
from webhookd.ids import Kind, format_cached, format_id
from webhookd.models import (
    Circuit,
    DeadLetter,
    Delivery,
    DeliveryFormat,
    DeliveryStatus,
    Endpoint,
    EndpointKind,
    Event,
    Ordering,
    Tenant,
)

# The head of the live queue (the fair order's virtual time, delivery/fairness.py).
QUEUE_HEAD = (
    select(func.min(Delivery.queue_key))
    .where(Delivery.next_attempt_at.is_not(None))
    .scalar_subquery()
)

ROUTING = (
    select(
        Endpoint.tenant_id,
        Endpoint.id,
        Endpoint.public_id,
        Endpoint.event_types,
        Endpoint.filter,
        Endpoint.channels,
        QUEUE_HEAD,
        Endpoint.circuit,
        Endpoint.disabled_reason,
        Endpoint.rate_limit,
        Endpoint.ordering,
    )
    .where(Endpoint.tenant_id.in_(bindparam("tenants", expanding=True)))
    .where(Endpoint.is_active.is_(True), Endpoint.kind == EndpointKind.WEBHOOK)
    .order_by(Endpoint.id)
)


BUSY_RETRY = dt.timedelta(milliseconds=20)  # a gated endpoint another transaction holds


@functools.cache
def claim_candidates(*, skip_saturated: bool, lock: bool, floor: bool = False) -> Select[int, int]:
    """Due deliveries in claim order (``queue_key``), skipping endpoints already at their cap.

    The partial index ``ix_deliveries_queue`` holds every column this filters on, so rows
    that are leased or belong to a saturated endpoint are skipped without reading the table.
    ``lock``: take the rows ``FOR UPDATE SKIP LOCKED`` (several claiming processes).
    ``floor``: only rows from queue key ``:floor`` on (the index is read from there).
    """
    query = (
        select(Delivery.id, Delivery.endpoint_id)
        .where(Delivery.next_attempt_at <= bindparam("now", type_=UTCDateTime()))
        .order_by(Delivery.queue_key)
        .limit(bindparam("scan", type_=Integer()))
    )
    if skip_saturated:
        query = query.where(Delivery.endpoint_id.not_in(bindparam("saturated", expanding=True)))
    if floor:
        query = query.where(Delivery.queue_key >= bindparam("floor", type_=BigInteger()))
    if lock:
        query = query.with_for_update(skip_locked=True)
    return query


def _row_values(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``values`` as bound parameters: ``{column: bindparam(prefix + column)}``."""
    return {column: bindparam(prefix + column) for column in values}


LEASE = (
    update(Delivery)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)))
    .values(
        _row_values(
            lifecycle.leased(owner="", now=dt.datetime.now(dt.UTC), lease=dt.timedelta()), "v_"
        )
    )
)

LOAD_JOBS = (
    select(
        Delivery.id,
        Delivery.tenant_id,
        Delivery.endpoint_id,
        Delivery.event_id.label("event_pk"),
        Endpoint.url,
        Tenant.secret_encrypted,
        Tenant.previous_secret_encrypted,
        Tenant.previous_secret_expires_at,
        Tenant.delivery_format,
        Endpoint.secret_encrypted.label("endpoint_secret_encrypted"),
        Endpoint.previous_secret_encrypted.label("endpoint_previous_secret_encrypted"),
        Endpoint.previous_secret_expires_at.label("endpoint_previous_secret_expires_at"),
        Event.event_id,
        Event.event_type,
        Event.payload,
        Event.created_at,
        Delivery.attempt_count,
        Delivery.cycle,
        Delivery.queue_key,
        Delivery.public_id,
        Tenant.public_id.label("tenant_public_id"),
        Endpoint.public_id.label("endpoint_public_id"),
        Endpoint.retry_schedule,
        Endpoint.rate_limit,
        Endpoint.headers_encrypted,
        Endpoint.ordering,
        Endpoint.kind,
        *HEALTH_COLUMNS,
    )
    .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
    .join(Event, Event.id == Delivery.event_id)
    .join(Tenant, Tenant.id == Delivery.tenant_id)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)))
    .order_by(Delivery.id)
)


def _while_held(columns: tuple[str, ...]) -> Update:
    """Set ``columns`` of a claimed delivery, only if this owner still holds the lease of
    this cycle (``w_id``, ``w_owner``, ``w_cycle``; the values as ``v_<column>``)."""
    return (
        update(Delivery)
        .where(
            Delivery.id == bindparam("w_id"),
            Delivery.lease_owner == bindparam("w_owner"),
            Delivery.status == DeliveryStatus.DELIVERING,
            Delivery.cycle == bindparam("w_cycle"),
        )
        .values({column: bindparam("v_" + column) for column in columns})
    )


END_ATTEMPT = _while_held(ATTEMPT_END_COLUMNS)  # end a claimed attempt
PUT_BACK = _while_held(PUT_BACK_COLUMNS)  # hand a claimed delivery back unattempted

ENABLE = (
    update(Endpoint)
    .where(Endpoint.id == bindparam("w_id"))
    .values(
        is_active=True,
        disabled_at=None,
        **{column.key: bindparam("v_" + column.key) for column in HEALTH_COLUMNS},
    )
)


def end_attempt_params(transition: Transition, owner: str) -> dict[str, Any]:
    job = transition.outcome.job
    params = {"v_" + column: value for column, value in transition.values.items()}
    params.update(w_id=job.delivery_id, w_owner=owner, w_cycle=job.cycle)
    return params


def _held(lock: bool) -> Select[int, int]:
    query = select(Delivery.id, Delivery.cycle).where(
        Delivery.id.in_(bindparam("ids", expanding=True)),
        Delivery.lease_owner == bindparam("owner"),
        Delivery.status == DeliveryStatus.DELIVERING,
    )
    return query.with_for_update() if lock else query


INSERT_DEAD_LETTERS = insert(DeadLetter)

RELEASE = (
    update(Delivery)
    .where(
        Delivery.lease_owner == bindparam("owner"),
        Delivery.status == DeliveryStatus.DELIVERING,
    )
    .values(_row_values(lifecycle.released(dt.datetime.now(dt.UTC)), "v_"))
)

# Rows the writer is finishing are locked by it and skipped (their attempt is over), so
# that a renewal never waits on the writer nor locks in an order that could deadlock it.
RENEW = (
    update(Delivery)
    .where(
        Delivery.id.in_(
            select(Delivery.id)
            .where(
                Delivery.id.in_(bindparam("ids", expanding=True)),
                Delivery.lease_owner == bindparam("owner"),
                Delivery.status == DeliveryStatus.DELIVERING,
            )
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(_row_values(lifecycle.renewed(now=dt.datetime.now(dt.UTC), lease=dt.timedelta()), "v_"))
)

FINISHED = (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD)
FINISHED_CYCLES = select(Delivery.id, Delivery.cycle).where(
    Delivery.id.in_(bindparam("ids", expanding=True)),
    Delivery.status.in_(bindparam("statuses", expanding=True)),
)
REQUEUE = (
    update(Delivery)
    # No IN list: the statement runs as an executemany, which cannot expand one.
    .where(
        Delivery.id == bindparam("w_id"),
        or_(*(Delivery.status == status for status in FINISHED)),
    )
    .values(_row_values(lifecycle.requeued(0, dt.datetime.now(dt.UTC)), "v_"))
)
RESOLVE_DEAD_LETTERS_OF = (
    update(DeadLetter)
    .where(
        DeadLetter.delivery_id.in_(bindparam("ids", expanding=True)),
        DeadLetter.resolved.is_(False),
    )
    .values(resolved=True, resolution="retried", resolved_at=bindparam("now"))
)
DISCARD_DEAD_LETTER = (
    update(DeadLetter)
    .where(DeadLetter.id == bindparam("w_id"), DeadLetter.resolved.is_(False))
    .values(resolved=True, resolution="discarded", resolved_at=bindparam("now"))
)


def delivery_refs(
    rows: Sequence[NewDelivery], inserted: Iterable[Sequence[Any]]
) -> list[DeliveryRef]:
    """The inserted deliveries (id, event, endpoint, as RETURNING gives them) with the public
    ids they were given, in id order."""
    public_ids = {(row.event_pk, row.endpoint_id): row.public_id for row in rows}
    return sorted(
        DeliveryRef(row_id, public_ids[(event_pk, endpoint_id)], event_pk, endpoint_id)
        for row_id, event_pk, endpoint_id in inserted
    )


def _prefixed(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + key: value for key, value in values.items()}


class CoreStore(RetentionStore, abc.ABC):
    """The store on SQLAlchemy Core; subclasses insert rows and write attempt ends their
    database's fastest way (the abstract methods: postgres.py, sqlite.py)."""

    lock_rows = False  # FOR UPDATE (SKIP LOCKED) where several processes claim

    def __init__(self, decrypt: Callable[[str], str]) -> None:
        self._decrypt = decrypt

    # The statements the engine runs for every claim and every batch of outcomes. A
    # subclass may run them its database's cheaper way (SQLite: on the driver).

    async def _fetch(
        self, conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Any]:
        return list(await conn.execute(statement, params))

    async def _execute(
        self, conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
    ) -> None:
        await conn.execute(statement, params)

    async def health_of(
        self, conn: AsyncConnection, endpoint_ids: Iterable[int], *, skip_locked: bool = False
    ) -> dict[int, tuple[Health, bool]]:
        """Each endpoint's health and whether it is FIFO, read now, locked where the
        database has row locks (``endpoints.health_query``)."""
        query = endpoints.health_query(lock=self.lock_rows, skip_locked=skip_locked)
        return endpoints.health_by_id(
            await self._fetch(conn, query, {"ids": sorted(set(endpoint_ids))})
        )

    # -- publishing --------------------------------------------------------------------------

    @abc.abstractmethod
    async def insert_events(
        self, conn: AsyncConnection, events: Sequence[NewEvent], now: dt.datetime
    ) -> list[InsertedEvent]:
        """The events inserted (duplicates of an event_id skipped), in input order."""

    async def insert_deliveries(
        self,
        conn: AsyncConnection,
        rows: Sequence[NewDelivery],
        now: dt.datetime,
        *,
        maybe_held: Collection[int] = (),
    ) -> list[DeliveryRef]:
        """New deliveries in their starting state, in the order of ``rows`` (and of their
        ids, but for rows that start waiting, inserted first). ``maybe_held``: endpoints
        that did not pass when routed (``Route.passes``); read again, locked, those still
        held (``health.held``) get their new deliveries waiting rather than due, so that no
        claim takes them only to hand them back. The lock (FOR NO KEY UPDATE in id order,
        as a recorder takes it) orders this publish with a recorder closing the circuit or
        an enable: that comes first (its state is read here, the rows start due) or waits
        for this commit (and then releases these rows with the others that waited)."""
        held: set[int] = set()
        if maybe_held:
            fresh = await self.health_of(conn, maybe_held)
            held = {e for e, (health, _) in fresh.items() if is_held(health, now)}
        if not held:
            return await self._insert_deliveries(conn, rows, lifecycle.new_delivery(now))
        due = [row for row in rows if row.endpoint_id not in held]
        waiting = [row for row in rows if row.endpoint_id in held]
        values = lifecycle.new_delivery(now, waiting=True)
        inserted = await self._insert_deliveries(conn, waiting, values)
        refs = [ref._replace(waiting=True) for ref in inserted]
        if due:
            refs += await self._insert_deliveries(conn, due, lifecycle.new_delivery(now))
        position = {row.public_id: n for n, row in enumerate(rows)}
        return sorted(refs, key=lambda ref: position[ref.public_id])

    @abc.abstractmethod
    async def _insert_deliveries(
        self, conn: AsyncConnection, rows: Sequence[NewDelivery], values: Mapping[str, Any]
    ) -> list[DeliveryRef]:
        """Insert these deliveries, each with ``values`` (``lifecycle.new_delivery``)."""

    async def routing(self, conn: AsyncConnection, tenant_ids: Sequence[int]) -> RoutingTable:
        table = RoutingTable({}, None)
        if tenant_ids:
            rows = await self._fetch(conn, ROUTING, {"tenants": sorted(tenant_ids)})
            for row in rows:
                tenant_id, endpoint_id, public_id, types, spec, channels, queue_head = row[:7]
                passes = row[7] == Circuit.CLOSED and row[8] is None  # Health.passes
                limited, fifo = row[9] is not None, row[10] == Ordering.FIFO
                route = Route(endpoint_id, public_id, types, spec, channels, passes, limited, fifo)
                table.endpoints.setdefault(tenant_id, []).append(route)
                table.queue_head = queue_head  # the same on every row
        return table

    # -- claiming ----------------------------------------------------------------------------

    async def claim_due(
        self,
        conn: AsyncConnection,
        *,
        owner: str,
        now: dt.datetime,
        lease: dt.timedelta,
        limit: int,
        in_flight: Mapping[int, int] | None = None,
        endpoint_caps: Callable[[int], int] | None = None,
        search_past_saturated: bool = True,
        search_from: int | None = None,
        search_past_capped: bool = True,
        probe: bool = True,
    ) -> Claim:
        """Rows leased by someone else are not due: skipped.

        With ``endpoint_caps`` (an endpoint's cap), no endpoint gets more than its cap in
        flight counting
        ``in_flight`` (this process's attempts per endpoint): a slow endpoint holds at most
        that many slots, never the whole engine. What does not fit stays due for later; the
        endpoints it belongs to (and those already at their cap) are in ``Claim.held_back``,
        so that the engine claims again when they have room.

        Looking past the rows of endpoints at their cap (``endpoint_id NOT IN (...)``) reads
        the index until it finds ``2 × limit`` other rows, so when the rest of the due work
        is small it reads every row of the saturated endpoints: the whole backlog of a slow
        endpoint. ``Claim.exhausted`` says such a search saw all the other due work; until
        new work may have come (a publish, a retry falling due, the poll) the engine passes
        ``search_past_saturated=False`` and the claim reads only the head of the queue.
        When only new deliveries came since (a publish), ``search_from`` is the smallest of
        their queue keys: the search reads the index from there, not through the saturated
        endpoints' backlogs again (everything due below it was seen by that claim).

        ``probe``: first make one waiting delivery of each endpoint whose circuit cooled
        down due (its probe); an engine asks for it about once per poll interval.

        Endpoints can also reach their cap while the window is read (a slow endpoint one
        short of its cap, its backlog at the head of the queue): when that leaves the window
        full of rows it could not take, the claim reads once more past those endpoints, so
        that the other endpoints' rows behind them are not left for a later wake-up.
        That second read can cost as much as a search past a large backlog, so it is done
        only with ``search_past_capped`` (the engine: new work may have come since its last
        claim), not on every claim that follows an endpoint getting room.
        """
        if probe and await endpoints.release_probes(conn, now):
            # Endpoints whose circuit cooled down: one waiting delivery of each is due now,
            # its queue key now (perhaps below ``search_from``).
            search_from = None
        busy = dict(in_flight or {})
        cap_of = endpoint_caps
        saturated = {e for e, n in busy.items() if n >= cap_of(e)} if cap_of is not None else set()
        scan = limit * 2 if cap_of is not None else limit  # room for rows caps skip
        search = bool(saturated) and search_past_saturated
        chosen: list[int] = []
        taken: set[int] = set()
        held_back = set(saturated)
        exhausted = False
        for passes in range(2):
            floor = search and search_from is not None
            query = claim_candidates(skip_saturated=search, lock=self.lock_rows, floor=floor)
            params: dict[str, Any] = {"now": now, "scan": scan}
            if search:
                params["saturated"] = sorted(saturated)
            if floor:
                params["floor"] = search_from
            rows = await self._fetch(conn, query, params)
            capped = False  # an endpoint reached its cap in this pass
            for delivery_id, endpoint_id in rows:
                if delivery_id in taken:
                    continue
                if cap_of is not None:
                    if busy.get(endpoint_id, 0) >= cap_of(endpoint_id):
                        held_back.add(endpoint_id)
                        capped |= endpoint_id not in saturated
                        saturated.add(endpoint_id)
                        continue
                    busy[endpoint_id] = busy.get(endpoint_id, 0) + 1
                chosen.append(delivery_id)
                taken.add(delivery_id)
                if len(chosen) == limit:
                    break
            if not passes:  # Every due row outside the endpoints saturated before this
                # claim was read, and all were taken (endpoints capped by this claim have
                # more, and say so through Claim.held_back).
                exhausted = search and len(rows) < scan and all(r[0] in taken for r in rows)
            # A window full of rows of endpoints that reached their cap while it was read
            # (a slow endpoint's backlog at the head of the queue): once more, past them.
            if len(chosen) == limit or len(rows) < scan or not capped:
                break
            if not search_past_capped:
                break
            search = True
        if not chosen:
            return Claim([], held_back, exhausted)
        return await self._lease(conn, chosen, Claim([], held_back, exhausted), owner, now, lease)

    async def lease_new(
        self,
        conn: AsyncConnection,
        *,
        delivery_ids: Sequence[int],
        owner: str,
        now: dt.datetime,
        lease: dt.timedelta,
    ) -> Claim:
        """Lease deliveries inserted in this transaction to ``owner`` as a claim would: the
        engine that published them takes them at once, with no claim transaction of its
        own. The same gate (``_gate``); a delivery whose endpoint has a rate limit by now
        is handed back due at once, for a claim to throttle."""
        claim = await self._lease(conn, delivery_ids, Claim([]), owner, now, lease)
        limited = [j for j in claim.jobs if j.rate_limit is not None]
        if limited:
            back = [PutBack(j, now, "rate_limit") for j in limited]
            await self.put_back(conn, owner=owner, items=back, now=now)
            claim.put_back += back
            claim.jobs = [j for j in claim.jobs if j.rate_limit is None]
        return claim

    async def _lease(
        self,
        conn: AsyncConnection,
        ids: Sequence[int],
        claim: Claim,
        owner: str,
        now: dt.datetime,
        lease: dt.timedelta,
    ) -> Claim:
        """Lease these due deliveries to ``owner``; their jobs, gated, in ``claim``."""
        lease_values = lifecycle.leased(owner=owner, now=now, lease=lease)
        await self._execute(conn, LEASE, {"ids": list(ids), **_prefixed(lease_values, "v_")})
        claim.jobs = await self._load_jobs(conn, ids, now)
        await self._gate(conn, claim, owner=owner, now=now, lease=lease)
        return claim

    async def _gate(
        self,
        conn: AsyncConnection,
        claim: Claim,
        *,
        owner: str,
        now: dt.datetime,
        lease: dt.timedelta,
    ) -> None:
        """Hand back the claimed deliveries that may not go out now (``health.gate``):
        those of a disabled endpoint (waiting), of an open circuit (until it cools down),
        all but one probe of a cooled circuit (half-open), and all but the head of a FIFO
        endpoint (waiting for their turn). Endpoints are read again, locked, first."""
        gated = {j.endpoint_id for j in claim.jobs if j.fifo or not j.health.passes}
        if not gated:
            return
        fresh = await self.health_of(conn, gated, skip_locked=True)
        keep: list[Job] = []
        by_endpoint: dict[int, list[Job]] = {}
        for job in claim.jobs:
            if job.endpoint_id in gated:
                by_endpoint.setdefault(job.endpoint_id, []).append(job)
            else:
                keep.append(job)
        back = claim.put_back
        for endpoint_id, jobs in sorted(by_endpoint.items()):
            if endpoint_id not in fresh:
                # Locked by a recorder deciding its health (or deleted, and its rows with
                # it): hand them back, due again in a moment, rather than wait for it.
                back += [PutBack(j, now + BUSY_RETRY, "busy") for j in jobs]
                continue
            state, fifo = fresh[endpoint_id]
            decision = gate(state, now)
            if decision is Gate.WAIT:
                back += [PutBack(j, None, "disabled") for j in jobs]
                continue
            if decision is Gate.DEFER:  # wait for the probe (endpoints.PARK_DUE)
                back += [PutBack(j, None, "circuit_open") for j in jobs]
                continue
            ready = jobs
            if fifo:
                head = await endpoints.fifo_head(conn, endpoint_id)
                ready = [j for j in jobs if j.delivery_id == head]
                back += [PutBack(j, None, "fifo") for j in jobs if j.delivery_id != head]
            if decision is Gate.PROBE and ready:
                deadline = now + lease
                state = probing(state, deadline)
                await endpoints.set_health(conn, {endpoint_id: state})
                back += [PutBack(j, None, "circuit_open") for j in ready[1:]]
                ready = ready[:1]
                claim.changes.append((ready[0], Change.HALF_OPEN))
            keep += [dataclasses.replace(j, health=state, fifo=fifo) for j in ready]
        claim.jobs = sorted(keep, key=lambda j: j.queue_key)
        await self.put_back(conn, owner=owner, items=back, now=now)

    async def put_back(
        self, conn: AsyncConnection, *, owner: str, items: Sequence[PutBack], now: dt.datetime
    ) -> None:
        """Hand claimed deliveries back unattempted (``lifecycle.put_back``)."""
        if items:
            await conn.execute(
                PUT_BACK,
                [
                    {
                        "w_id": p.job.delivery_id,
                        "w_owner": owner,
                        "w_cycle": p.job.cycle,
                        **_prefixed(lifecycle.put_back(p.job, p.until, now), "v_"),
                    }
                    for p in items
                ],
            )

    async def _load_jobs(
        self, conn: AsyncConnection, ids: Sequence[int], now: dt.datetime
    ) -> list[Job]:
        rows = await self._fetch(conn, LOAD_JOBS, {"ids": list(ids)})
        return [
            Job(
                delivery_id=r.id,
                tenant_id=r.tenant_id,
                endpoint_id=r.endpoint_id,
                event_pk=r.event_pk,
                url=r.url,
                secrets=self._signing_secrets(r, now),
                event_id=r.event_id,
                event_type=r.event_type,
                payload=r.payload,
                created_at=r.created_at,
                attempt_number=r.attempt_count + 1,
                cycle=r.cycle,
                queue_key=r.queue_key,
                message_id=format_id(Kind.DELIVERY, r.public_id),
                tenant_ref=format_cached(Kind.TENANT, r.tenant_public_id),
                endpoint_ref=format_cached(Kind.ENDPOINT, r.endpoint_public_id),
                retry_schedule=tuple(r.retry_schedule) if r.retry_schedule else None,
                rate_limit=r.rate_limit,
                headers=self._headers(r.headers_encrypted),
                fifo=r.ordering == Ordering.FIFO,
                operational=r.kind == EndpointKind.OPERATIONAL,
                svix=r.delivery_format == DeliveryFormat.SVIX,
                health=HEALTHY
                if r.circuit == Circuit.CLOSED
                and r.disabled_reason is None
                and not r.consecutive_failures
                and r.failing_since is None
                else Health.of(r),
            )
            for r in rows
        ]

    def _headers(self, stored: str | None) -> dict[str, str] | None:
        return decode_headers(stored, self._decrypt)

    def _signing_secrets(self, row: Any, now: dt.datetime) -> tuple[str, ...]:
        """The endpoint's own secrets if it has one, else its tenant's."""
        if row.endpoint_secret_encrypted is not None:
            current, previous, expires = (
                row.endpoint_secret_encrypted,
                row.endpoint_previous_secret_encrypted,
                row.endpoint_previous_secret_expires_at,
            )
        else:
            current, previous, expires = (
                row.secret_encrypted,
                row.previous_secret_encrypted,
                row.previous_secret_expires_at,
            )
        if previous and expires is not None and expires > now:
            return (self._decrypt(current), self._decrypt(previous))
        return (self._decrypt(current),)

    # -- outcomes ----------------------------------------------------------------------------

    async def record_outcomes(
        self,
        conn: AsyncConnection,
        *,
        owner: str,
        outcomes: Sequence[Outcome],
        policy: EndpointPolicy,
        now: dt.datetime,
    ) -> Recorded:
        """Four statements whatever the batch size: which rows this owner still holds, the
        attempt ends, the attempt rows, the dead letters; then, only for the endpoints
        whose health may change (a failure, a circuit not closed, failures counted) or
        that are FIFO, their health and turns (``health.after_results``), and the
        tenants' operational notices."""
        held_rows = await self._fetch(
            conn,
            _HELD[self.lock_rows],
            {"ids": [o.job.delivery_id for o in outcomes], "owner": owner},
        )
        held = {row[0]: row[1] for row in held_rows}
        transitions = [
            lifecycle.after_attempt(o, policy, now)
            for o in outcomes
            if held.get(o.job.delivery_id) == o.job.cycle
        ]
        if not transitions:
            return Recorded([])
        await self._write_attempt_ends(conn, transitions, owner)
        recorded = Recorded(transitions)
        dead = [t for t in transitions if t.dead_lettered]
        if dead:
            await conn.execute(
                INSERT_DEAD_LETTERS, [lifecycle.dead_letter_row(t.outcome, now) for t in dead]
            )
        await self._endpoint_health(conn, recorded, policy, now)
        for t in dead:
            job = t.outcome.job
            if not job.operational:
                await self._notify(conn, recorded, job, "delivery.dead_lettered", now, t)
        return recorded

    async def _endpoint_health(
        self, conn: AsyncConnection, recorded: Recorded, policy: EndpointPolicy, now: dt.datetime
    ) -> None:
        by_endpoint: dict[int, list[Transition]] = {}
        for t in recorded.transitions:
            by_endpoint.setdefault(t.outcome.job.endpoint_id, []).append(t)
        watched = sorted(
            endpoint_id
            for endpoint_id, ts in by_endpoint.items()
            if ts[0].outcome.job.fifo
            or not ts[0].outcome.job.health.clean
            or not all(t.outcome.succeeded for t in ts)
        )
        if not watched:
            return
        fresh = await self.health_of(conn, watched)
        changed: dict[int, Health] = {}
        for endpoint_id in watched:
            if endpoint_id not in fresh:
                continue
            state, fifo = fresh[endpoint_id]
            ts = sorted(by_endpoint[endpoint_id], key=lambda t: t.outcome.started_at)
            results = [
                Result(t.outcome.succeeded, t.outcome.response_status == GONE, t.outcome.started_at)
                for t in ts
            ]
            after, changes = after_results(state, results, policy.breaker, now)
            if after != state:
                changed[endpoint_id] = after
            job = ts[-1].outcome.job
            for change in changes:
                recorded.changes.append((job, change))
                if change is Change.OPENED and after.circuit_until is not None:
                    await endpoints.park_due(conn, endpoint_id, after.circuit_until, now)
                elif change is Change.CLOSED:
                    recorded.woken += await endpoints.release_endpoint(
                        conn, endpoint_id, state.circuit_until, now
                    )
                elif change in (Change.DISABLED_GONE, Change.DISABLED_FAILING):
                    await endpoints.park_endpoint(conn, endpoint_id, now)
                    if not job.operational:
                        await self._notify(conn, recorded, job, "endpoint.disabled", now, ts[-1])
            if fifo and after.disabled_reason is None and any(t.finished for t in ts):
                recorded.woken += await endpoints.release_head(conn, endpoint_id, now)
        await endpoints.set_health(conn, changed)

    async def _notify(
        self,
        conn: AsyncConnection,
        recorded: Recorded,
        job: Job,
        event_type: str,
        now: dt.datetime,
        transition: Transition | None = None,
    ) -> None:
        payload: dict[str, Any] = {"endpoint_id": job.endpoint_ref}
        if event_type == "endpoint.disabled":
            gone = transition is not None and transition.outcome.response_status == GONE
            payload["reason"] = "gone" if gone else "failing"
        if transition is not None:
            payload["last_error"] = transition.outcome.summary[: lifecycle.ERROR_LIMIT]
        if event_type == "delivery.dead_lettered":
            payload.update(
                delivery_id=job.message_id,
                event_id=job.event_id,
                event_type=job.event_type,
                attempts=job.attempt_number,
            )
        delivery_id = await endpoints.notify(conn, job.tenant_id, event_type, payload, now)
        if delivery_id is not None:
            recorded.woken.append(delivery_id)

    async def release_waiting(
        self, conn: AsyncConnection, *, endpoint_id: int, now: dt.datetime
    ) -> list[int]:
        fresh = await self.health_of(conn, [endpoint_id])
        if endpoint_id not in fresh or fresh[endpoint_id][0].disabled_reason is not None:
            return []
        return await endpoints.release_endpoint(conn, endpoint_id, None, now)

    async def enable_endpoint(
        self, conn: AsyncConnection, *, endpoint_id: int, now: dt.datetime
    ) -> list[int]:
        """Enable the endpoint: breaker reset, active, what waited (or was deferred by
        its breaker) due now; an ``endpoint.enabled`` notice if it was disabled. The ids
        of the deliveries made due."""
        fresh = await self.health_of(conn, [endpoint_id])
        if endpoint_id not in fresh:
            return []
        state, _ = fresh[endpoint_id]
        await conn.execute(ENABLE, {"w_id": endpoint_id, **_prefixed(HEALTHY.values(), "v_")})
        woken = await endpoints.release_endpoint(conn, endpoint_id, state.circuit_until, now)
        if state.disabled_reason is not None:
            tenant_id, ref = (
                await conn.execute(
                    select(Endpoint.tenant_id, Endpoint.public_id).where(Endpoint.id == endpoint_id)
                )
            ).one()
            payload = {
                "endpoint_id": format_id(Kind.ENDPOINT, ref),
                "previous_reason": state.disabled_reason.value,
            }
            notice = await endpoints.notify(conn, tenant_id, "endpoint.enabled", payload, now)
            if notice is not None:
                woken.append(notice)
        return woken

    @abc.abstractmethod
    async def _write_attempt_ends(
        self, conn: AsyncConnection, transitions: Sequence[Transition], owner: str
    ) -> None:
        """Write each attempt's end (row values and attempt record) if ``owner`` still
        holds the lease."""

    async def renew_leases(
        self,
        conn: AsyncConnection,
        *,
        owner: str,
        delivery_ids: Sequence[int],
        now: dt.datetime,
        lease: dt.timedelta,
    ) -> int:
        values = _prefixed(lifecycle.renewed(now=now, lease=lease), "v_")
        result = await conn.execute(RENEW, {"ids": sorted(delivery_ids), "owner": owner, **values})
        return int(result.rowcount)

    async def release_leases(self, conn: AsyncConnection, *, owner: str, now: dt.datetime) -> int:
        result = await conn.execute(
            RELEASE, {"owner": owner, **_prefixed(lifecycle.released(now), "v_")}
        )
        return int(result.rowcount)

    # -- dead letters ------------------------------------------------------------------------

    async def requeue(
        self,
        conn: AsyncConnection,
        *,
        delivery_ids: Sequence[int],
        statuses: Collection[DeliveryStatus] = (DeliveryStatus.DEAD,),
        now: dt.datetime,
    ) -> list[int]:
        finished = [s for s in statuses if s in FINISHED]
        if not delivery_ids or not finished:
            return []
        query = FINISHED_CYCLES.with_for_update() if self.lock_rows else FINISHED_CYCLES
        cycles = (
            await conn.execute(query, {"ids": list(delivery_ids), "statuses": finished})
        ).all()
        if not cycles:
            return []
        rows = [
            {"w_id": delivery_id, **_prefixed(lifecycle.requeued(cycle, now), "v_")}
            for delivery_id, cycle in cycles
        ]
        await conn.execute(REQUEUE, rows)
        requeued = sorted(delivery_id for delivery_id, _ in cycles)
        await conn.execute(RESOLVE_DEAD_LETTERS_OF, {"ids": requeued, "now": now})
        return requeued

    async def discard_dead_letter(
        self, conn: AsyncConnection, *, entry_id: int, now: dt.datetime
    ) -> None:
        await conn.execute(DISCARD_DEAD_LETTER, {"w_id": entry_id, "now": now})


_HELD = {False: _held(False), True: _held(True)}
