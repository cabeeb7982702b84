"""Delivery operations for the rest of the application: fan a batch of new events out to
their endpoints, and the dead-letter queue. Every write goes through the delivery store,
and every wake-up of the delivery engine is submitted once the transaction has committed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd import metrics
from webhookd.db import after_commit, after_rollback, utcnow
from webhookd.delivery import fairness, repository
from webhookd.delivery.filters import matcher
from webhookd.delivery.routing import in_channels, subscribed
from webhookd.delivery.schemas import DeadLetterRow, DeliveryRow, ReplayOutcome
from webhookd.delivery.store import (
    DeliveryRef,
    DeliveryStore,
    InsertedEvent,
    NewDelivery,
    NewEvent,
    Route,
)
from webhookd.errors import Conflict
from webhookd.ids import Kind, find_by_public_id, new_id
from webhookd.models import Attempt, Delivery, DeliveryStatus
from webhookd.queue.base import DeliveryQueue

__all__ = [
    "DeliveryService",
    "Enqueued",
    "InsertedEvent",
    "LiveDelivery",
    "NewEvent",
    "Recovered",
    "Replayed",
    "RoutableEvent",
]

MAX_BULK_RETRY = 1000
MAX_SCAN_ROUNDS = 20  # reads of deliveries for one page of events in a status


class RoutableEvent(NamedTuple):
    id: int  # events.id
    tenant_id: int
    event_type: str
    payload: Any  # what endpoints' filters are matched against
    channels: list[str] | None = None  # what endpoints' channels are matched against


TEST_EVENT_TYPE = "webhookd.test"
FINISHED_STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD)


class Replayed(NamedTuple):
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    outcome: ReplayOutcome


class Recovered(NamedTuple):
    """What one batch of a recovery did."""

    handled: int  # entries read
    requeued: int  # of which sent again (the others' deliveries were no longer dead)
    last_entry: int  # the id of the last entry read: where the next batch starts


class LiveDelivery(NamedTuple):
    """A delivery of the operator's live view, with what is shown beside it."""

    delivery: Delivery
    event_id: str  # the publisher's
    event_type: str
    endpoint_id: uuid.UUID  # public ids
    tenant_id: uuid.UUID
    tenant_name: str


class Enqueued(NamedTuple):
    """A new delivery, by the public ids the API shows."""

    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID


class DeliveryService:
    def __init__(
        self, *, store: DeliveryStore, queue: DeliveryQueue, clock: fairness.FairClock
    ) -> None:
        self.store = store
        self.queue = queue
        self.clock = clock

    def _wake_after_commit(
        self, session: AsyncSession, delivery_ids: list[int], from_key: int | None = None
    ) -> None:
        """Tell the queue once committed; ``from_key``: the rows are new, with queue keys
        from there on (the engine's claim need not search below it for them)."""
        if delivery_ids:
            after_commit(session, lambda: self.queue.submit(delivery_ids, from_key))

    # -- publishing --------------------------------------------------------------------------

    async def insert_events(
        self, session: AsyncSession, events: Sequence[NewEvent], now: dt.datetime
    ) -> list[InsertedEvent]:
        """Store new events; those already published (same tenant and event_id) are left
        out of the answer."""
        return await self.store.insert_events(await session.connection(), events, now)

    async def enqueue_for_events(
        self, session: AsyncSession, events: Sequence[RoutableEvent], now: dt.datetime
    ) -> dict[int, list[Enqueued]]:
        """Create a delivery of each event for every active endpoint of its tenant that
        subscribed to its type and whose payload filter (if any) it matches, in fair order
        across tenants (delivery/fairness.py); the engine is woken once they are committed.
        The deliveries of each event, by event."""
        conn = await session.connection()
        table = await self.store.routing(conn, sorted({e.tenant_id for e in events}))
        virtual_time = fairness.virtual_time(table.queue_head, now)
        routes: dict[tuple[int, str], list[Route]] = {}
        endpoint_public: dict[int, uuid.UUID] = {}
        rows: list[NewDelivery] = []
        maybe_held: set[int] = set()  # endpoints not closed and enabled when routed
        # Rows this process's engine may take at once (queue.base.Lessee): their endpoint
        # passes, and neither a rate limit nor FIFO order needs a claim's gate.
        direct: set[uuid.UUID] = set()
        for event in events:
            key = (event.tenant_id, event.event_type)
            if key not in routes:
                routes[key] = [
                    route
                    for route in table.endpoints.get(event.tenant_id, ())
                    if subscribed(route.event_types, event.event_type)
                ]
            endpoints = [
                route
                for route in routes[key]
                if (route.filter is None or matcher(route.filter)(event.payload))
                and in_channels(route.channels, event.channels)
            ]
            if not endpoints:
                continue
            queue_keys = self.clock.assign(event.tenant_id, len(endpoints), virtual_time)
            for route, queue_key in zip(endpoints, queue_keys, strict=True):
                endpoint_public[route.endpoint_id] = route.public_id
                if not route.passes:
                    maybe_held.add(route.endpoint_id)
                delivery = NewDelivery(
                    new_id(), event.tenant_id, event.id, route.endpoint_id, queue_key
                )
                rows.append(delivery)
                if route.passes and not route.rate_limited and not route.fifo:
                    direct.add(delivery.public_id)
        by_event: dict[int, list[Enqueued]] = {}
        if rows:
            refs = await self.store.insert_deliveries(conn, rows, now, maybe_held=maybe_held)
            for ref in refs:
                enqueued = Enqueued(ref.public_id, endpoint_public[ref.endpoint_id])
                by_event.setdefault(ref.event_pk, []).append(enqueued)
            keys = {row.public_id: row.queue_key for row in rows}
            candidates = sorted(
                (ref for ref in refs if ref.public_id in direct), key=lambda r: keys[r.public_id]
            )
            leased = await self._lease_to_engine(session, candidates, now)
            # Rows created waiting are released (and woken for) by their endpoint's recovery.
            due = [ref for ref in refs if ref.id not in leased and not ref.waiting]
            if due:
                from_key = min(keys[ref.public_id] for ref in due)
                after_commit(session, lambda: self._wake_for_new(due, from_key))
        return by_event

    def _wake_for_new(self, refs: Sequence[DeliveryRef], from_key: int) -> None:
        """Once the publish committed: wake the queue for its due rows, but for those the
        local engine claims anyway as soon as their endpoint has room (at its cap, rows
        left behind: a claim now could not take them). A publish to a few saturated
        endpoints then costs no claim."""
        lessee = self.queue.lessee()
        ids = [ref.id for ref in refs if lessee is None or not lessee.claims_later(ref.endpoint_id)]
        if ids:
            self.queue.submit(ids, from_key)

    async def _lease_to_engine(
        self, session: AsyncSession, candidates: Sequence[DeliveryRef], now: dt.datetime
    ) -> set[int]:
        """Lease to this process's engine, in this transaction, the new deliveries it has
        room for (``queue.base.Lessee.reserve``: only while nothing else is due), so that
        they go out as soon as the publish commits, with no claim transaction: at everyday
        load that is every delivery. The ids leased; the others wait for a claim."""
        lessee = self.queue.lessee()
        if lessee is None or not candidates:
            return set()
        taken = lessee.reserve([ref.endpoint_id for ref in candidates])
        if not taken:
            return set()
        chosen = [candidates[i] for i in taken]
        endpoint_ids = [ref.endpoint_id for ref in chosen]
        after_rollback(session, lambda: lessee.release(endpoint_ids))
        claim = await self.store.lease_new(
            await session.connection(),
            delivery_ids=[ref.id for ref in chosen],
            owner=lessee.owner,
            now=now,
            lease=lessee.lease,
        )
        after_commit(session, lambda: lessee.adopt(claim, endpoint_ids))
        return {ref.id for ref in chosen}

    # -- endpoints ---------------------------------------------------------------------------

    async def enable_endpoint(self, session: AsyncSession, endpoint_id: int) -> None:
        """Enable the endpoint (row id): breaker reset, active again, and what waited for it
        sent once the transaction has committed."""
        conn = await session.connection()
        woken = await self.store.enable_endpoint(conn, endpoint_id=endpoint_id, now=utcnow())
        self._wake_after_commit(session, woken)

    async def release_waiting(self, session: AsyncSession, endpoint_id: int) -> None:
        """Send what waits for its turn (an endpoint no longer FIFO)."""
        conn = await session.connection()
        woken = await self.store.release_waiting(conn, endpoint_id=endpoint_id, now=utcnow())
        self._wake_after_commit(session, woken)

    # -- test sends and replays -------------------------------------------------------------

    async def send_test(
        self,
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int,
        payload: Any,
        now: dt.datetime,
    ) -> uuid.UUID:
        """Publish a ``webhookd.test`` event to this one endpoint (row id), whatever it
        subscribed to; the public id of its delivery."""
        event = NewEvent(new_id(), tenant_id, f"test_{new_id().hex}", TEST_EVENT_TYPE, payload)
        conn = await session.connection()
        (inserted,) = await self.store.insert_events(conn, [event], now)
        return (await self._add_deliveries(session, tenant_id, inserted.id, [endpoint_id], now))[0]

    async def _add_deliveries(
        self,
        session: AsyncSession,
        tenant_id: int,
        event_pk: int,
        endpoint_ids: Sequence[int],
        now: dt.datetime,
    ) -> list[uuid.UUID]:
        """New deliveries of one event to these endpoints (row ids), woken after commit; their
        public ids, in the order of ``endpoint_ids``."""
        table = await self.store.routing(await session.connection(), [tenant_id])
        keys = self.clock.assign(
            tenant_id, len(endpoint_ids), fairness.virtual_time(table.queue_head, now)
        )
        rows = [
            NewDelivery(new_id(), tenant_id, event_pk, endpoint, key)
            for endpoint, key in zip(endpoint_ids, keys, strict=True)
        ]
        refs = await self.store.insert_deliveries(await session.connection(), rows, now)
        self._wake_after_commit(session, [ref.id for ref in refs])
        return [row.public_id for row in rows]

    async def replay_event(
        self,
        session: AsyncSession,
        *,
        tenant_id: int,
        event_pk: int,
        endpoint_ids: Sequence[tuple[int, uuid.UUID]] | None,
    ) -> list[Replayed]:
        """Send the event (row id) again: each of its finished deliveries (succeeded or dead)
        starts a fresh cycle, a live one is left as it is (``in_progress``). With
        ``endpoint_ids`` ((row id, public id) of the tenant's endpoints), only to those,
        and to one that never had a delivery of the event, a new delivery (``created``)."""
        existing = await repository.event_deliveries(
            session, tenant_id=tenant_id, event_pk=event_pk
        )
        by_endpoint = {row[2]: row for row in existing}
        if endpoint_ids is None:
            chosen = [(row[2], row[3]) for row in existing]
        else:
            chosen = list(dict.fromkeys(endpoint_ids))
        restarted = set(
            await self._restart(
                session,
                [by_endpoint[e][0] for e, _ in chosen if e in by_endpoint],
                FINISHED_STATUSES,
            )
        )
        new_endpoints = [(e, p) for e, p in chosen if e not in by_endpoint]
        created: list[uuid.UUID] = []
        if new_endpoints:
            created = await self._add_deliveries(
                session, tenant_id, event_pk, [e for e, _ in new_endpoints], utcnow()
            )
        replayed = [
            Replayed(
                by_endpoint[e][1],
                p,
                "restarted" if by_endpoint[e][0] in restarted else "in_progress",
            )
            for e, p in chosen
            if e in by_endpoint
        ]
        replayed += [
            Replayed(d, p, "created") for d, (_, p) in zip(created, new_endpoints, strict=True)
        ]
        return replayed

    async def retry_delivery(self, session: AsyncSession, *, delivery_pk: int) -> bool:
        """A fresh cycle for this dead delivery (row id); whether it was dead."""
        return bool(await self._restart(session, [delivery_pk], (DeliveryStatus.DEAD,)))

    async def recover_batch(
        self,
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int,
        since: dt.datetime,
        until: dt.datetime,
        after: int,
        limit: int,
    ) -> Recovered:
        """Send again the next ``limit`` unresolved dead-letter entries of the endpoint
        created in [since, until] after entry ``after`` (a recovery job's batch)."""
        entries = await repository.dead_letters_to_recover(
            session,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            since=since,
            until=until,
            after=after,
            limit=limit,
        )
        if not entries:
            return Recovered(0, 0, after)
        restarted = await self._restart(session, [d for _, d in entries], (DeliveryStatus.DEAD,))
        return Recovered(len(entries), len(restarted), entries[-1][0])

    @staticmethod
    async def count_to_recover(
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int,
        since: dt.datetime,
        until: dt.datetime,
    ) -> int:
        return await repository.count_to_recover(
            session, tenant_id=tenant_id, endpoint_id=endpoint_id, since=since, until=until
        )

    # -- reads -------------------------------------------------------------------------------

    @staticmethod
    async def get_delivery(
        session: AsyncSession, *, tenant_id: int, delivery_id: str
    ) -> tuple[DeliveryRow, list[Attempt]]:
        """A delivery by its public id (``dlv_…``), with its attempts."""
        return await find_by_public_id(
            Kind.DELIVERY,
            delivery_id,
            "delivery",
            lambda public_id: repository.get_delivery(
                session, tenant_id=tenant_id, public_id=public_id
            ),
        )

    @staticmethod
    async def delivery_states(
        session: AsyncSession, *, tenant_id: int, event_pk: int
    ) -> list[tuple[uuid.UUID, uuid.UUID, DeliveryStatus]]:
        return await repository.delivery_states(session, tenant_id=tenant_id, event_pk=event_pk)

    @staticmethod
    async def deliveries_of_event(
        session: AsyncSession, *, tenant_id: int, event_pk: int
    ) -> list[tuple[DeliveryRow, list[Attempt]]]:
        return await repository.deliveries_of_event(session, tenant_id=tenant_id, event_pk=event_pk)

    @staticmethod
    async def list_deliveries(
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int | None,
        statuses: Sequence[DeliveryStatus],
        since: dt.datetime | None,
        limit: int,
        before: int | None,
    ) -> list[DeliveryRow]:
        """The tenant's deliveries (of one endpoint, with these statuses, created since a
        moment), newest first."""
        return await repository.list_deliveries(
            session,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            statuses=statuses,
            since=since,
            limit=limit,
            before=before,
        )

    @staticmethod
    async def events_in_status(
        session: AsyncSession,
        *,
        tenant_id: int,
        status: DeliveryStatus,
        event_type: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        limit: int,
        before: int | None,
    ) -> tuple[list[int], int | None]:
        """The row ids of up to ``limit`` events of the tenant that have a delivery in
        ``status`` (of this type, published in [since, until]), each once, by their newest
        such delivery, newest first, read from the deliveries listing; and the cursor of the
        next page (a delivery id; None: no more). ``before`` is the cursor of this page: an
        event an earlier page listed is not listed again."""
        statuses = (status,)
        chunk = max(2 * limit, 50)
        found: list[int] = []
        seen: set[int] = set()
        cursor = before
        for _ in range(MAX_SCAN_ROUNDS):
            hits = await repository.event_hits(
                session,
                tenant_id=tenant_id,
                statuses=statuses,
                event_type=event_type,
                since=since,
                until=until,
                limit=chunk,
                before=cursor,
            )
            if before is not None:  # listed on an earlier page: at a delivery from ``before``
                seen |= await repository.events_hit_from(
                    session,
                    tenant_id=tenant_id,
                    event_pks=list({e for _, e in hits} - seen),
                    statuses=statuses,
                    from_id=before,
                )
            for delivery_id, event_pk in hits:
                cursor = delivery_id
                if event_pk not in seen:
                    seen.add(event_pk)
                    found.append(event_pk)
                    if len(found) == limit:
                        return found, delivery_id
            if len(hits) < chunk:
                return found, None
        return found, cursor  # a short page: the next one goes on from here

    @staticmethod
    async def latest_deliveries(session: AsyncSession, *, limit: int) -> list[LiveDelivery]:
        """The newest deliveries of every tenant, newest first (the operator's live view)."""
        return [
            LiveDelivery(*row) for row in await repository.latest_deliveries(session, limit=limit)
        ]

    # -- dead-letter queue -------------------------------------------------------------------

    @staticmethod
    async def list_dead_letters(
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int | None,
        event_type: str | None,
        resolved: bool | None,
        limit: int,
        before: int | None,
    ) -> list[DeadLetterRow]:
        return await repository.list_dead_letters(
            session,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            resolved=resolved,
            limit=limit,
            before=before,
        )

    @staticmethod
    async def get_dead_letter(
        session: AsyncSession, *, tenant_id: int, entry_id: str
    ) -> DeadLetterRow:
        """An entry by its public id (``dlq_…``)."""
        return await find_by_public_id(
            Kind.DEAD_LETTER,
            entry_id,
            "dead-letter entry",
            lambda public_id: repository.get_dead_letter(
                session, tenant_id=tenant_id, public_id=public_id
            ),
        )

    async def retry_dead_letter(
        self, session: AsyncSession, *, tenant_id: int, entry_id: str
    ) -> uuid.UUID:
        """Deliver the entry's delivery again with a fresh cycle; its public id."""
        row = await self.get_dead_letter(session, tenant_id=tenant_id, entry_id=entry_id)
        entry = row[0]
        if entry.resolved:
            raise Conflict(f"dead-letter entry {entry_id} is already resolved ({entry.resolution})")
        await self._requeue(session, [row])
        return row[2]

    async def retry_dead_letters(
        self,
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int | None,
        event_type: str | None,
    ) -> list[uuid.UUID]:
        """Retry every unresolved entry matching the filter (up to MAX_BULK_RETRY per call);
        the public ids of their deliveries."""
        rows = await repository.unresolved_dead_letters(
            session,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            limit=MAX_BULK_RETRY,
        )
        await self._requeue(session, rows)
        return [row[2] for row in rows]

    async def retry_dead_letters_batch(
        self,
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int | None,
        event_type: str | None,
        until: dt.datetime,
        after: int,
        limit: int,
    ) -> Recovered:
        """Retry the next ``limit`` unresolved dead-letter entries of the tenant (of the
        endpoint, of the event type) created up to ``until``, after entry ``after`` (a batch
        of a ``retry_dead_letters`` job)."""
        entries = await repository.dead_letters_to_retry(
            session,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            until=until,
            after=after,
            limit=limit,
        )
        if not entries:
            return Recovered(0, 0, after)
        restarted = await self._restart(session, [d for _, d in entries], (DeliveryStatus.DEAD,))
        return Recovered(len(entries), len(restarted), entries[-1][0])

    @staticmethod
    async def count_dead_letters_to_retry(
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int | None,
        event_type: str | None,
        until: dt.datetime,
    ) -> int:
        return await repository.count_to_retry(
            session,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            until=until,
        )

    async def _requeue(self, session: AsyncSession, rows: Sequence[DeadLetterRow]) -> None:
        if rows:
            await self._restart(
                session, [row[0].delivery_id for row in rows], (DeliveryStatus.DEAD,)
            )

    async def _restart(
        self,
        session: AsyncSession,
        delivery_ids: Sequence[int],
        statuses: Sequence[DeliveryStatus],
    ) -> list[int]:
        """A fresh cycle for those of ``delivery_ids`` in one of ``statuses``, woken after
        commit; the ids restarted."""
        restarted = await self.store.requeue(
            await session.connection(), delivery_ids=delivery_ids, statuses=statuses, now=utcnow()
        )
        self._wake_after_commit(session, restarted)
        return restarted

    async def discard_dead_letter(
        self, session: AsyncSession, *, tenant_id: int, entry_id: str
    ) -> DeadLetterRow:
        """Resolve the entry without delivering it (``resolution: discarded``)."""
        row = await self.get_dead_letter(session, tenant_id=tenant_id, entry_id=entry_id)
        entry = row[0]
        if not entry.resolved:
            conn = await session.connection()
            await self.store.discard_dead_letter(conn, entry_id=entry.id, now=utcnow())
            await session.refresh(entry)
        return row


async def refresh_gauges(session: AsyncSession) -> None:
    """Set the gauges that describe database state (DLQ size, due backlog) from the database."""
    metrics.DLQ_SIZE.set(await repository.count_unresolved_dead_letters(session))
    metrics.DELIVERIES_DUE.set(await repository.count_due(session, now=utcnow()))
