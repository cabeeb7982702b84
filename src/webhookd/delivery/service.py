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
from webhookd.db import after_commit, utcnow
from webhookd.delivery import fairness, repository
from webhookd.delivery.filters import matcher
from webhookd.delivery.routing import subscribed
from webhookd.delivery.schemas import DeadLetterRow, DeliveryRow
from webhookd.delivery.store import DeliveryStore, InsertedEvent, NewDelivery, NewEvent, Route
from webhookd.errors import Conflict, NotFound
from webhookd.ids import Kind, new_id, parse_id
from webhookd.models import Attempt, DeliveryStatus
from webhookd.queue.base import DeliveryQueue

__all__ = ["DeliveryService", "Enqueued", "InsertedEvent", "NewEvent", "RoutableEvent"]

MAX_BULK_RETRY = 1000


class RoutableEvent(NamedTuple):
    id: int  # events.id
    tenant_id: int
    event_type: str
    payload: Any  # what endpoints' filters are matched against


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

    def _wake_after_commit(self, session: AsyncSession, delivery_ids: list[int]) -> None:
        if delivery_ids:
            after_commit(session, lambda: self.queue.submit(delivery_ids))

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
                if route.filter is None or matcher(route.filter)(event.payload)
            ]
            if not endpoints:
                continue
            queue_keys = self.clock.assign(event.tenant_id, len(endpoints), virtual_time)
            for route, queue_key in zip(endpoints, queue_keys, strict=True):
                endpoint_public[route.endpoint_id] = route.public_id
                delivery = NewDelivery(
                    new_id(), event.tenant_id, event.id, route.endpoint_id, queue_key
                )
                rows.append(delivery)
        by_event: dict[int, list[Enqueued]] = {}
        if rows:
            refs = await self.store.insert_deliveries(conn, rows, now)
            for ref in refs:
                enqueued = Enqueued(ref.public_id, endpoint_public[ref.endpoint_id])
                by_event.setdefault(ref.event_pk, []).append(enqueued)
            self._wake_after_commit(session, [ref.id for ref in refs])
        return by_event

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

    # -- reads -------------------------------------------------------------------------------

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
        public_id = parse_id(Kind.DEAD_LETTER, entry_id)
        found = None
        if public_id is not None:
            found = await repository.get_dead_letter(
                session, tenant_id=tenant_id, public_id=public_id
            )
        if found is None:
            raise NotFound(f"dead-letter entry {entry_id!r} not found")
        return found

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

    async def _requeue(self, session: AsyncSession, rows: Sequence[DeadLetterRow]) -> None:
        if not rows:
            return
        pairs = [(row[0].id, row[0].delivery_id) for row in rows]
        await self.store.requeue_dead(await session.connection(), entries=pairs, now=utcnow())
        self._wake_after_commit(session, [d for _, d in pairs])

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
