"""Delivery operations for the rest of the application: fan a batch of new events out to
their endpoints, and the dead-letter queue. Every write goes through the delivery store,
and every wake-up of the delivery engine is submitted once the transaction has committed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from webhookd import metrics
from webhookd.db import after_commit, utcnow
from webhookd.delivery import fairness, repository
from webhookd.delivery.routing import subscribed
from webhookd.delivery.store import DeliveryRef, DeliveryStore, InsertedEvent, NewDelivery, NewEvent
from webhookd.errors import Conflict, NotFound
from webhookd.models import Attempt, DeadLetter, Delivery, DeliveryStatus
from webhookd.queue.base import DeliveryQueue

__all__ = ["DeliveryRef", "DeliveryService", "InsertedEvent", "NewEvent", "RoutableEvent"]

MAX_BULK_RETRY = 1000


class RoutableEvent(NamedTuple):
    id: int  # events.id
    tenant_id: int
    event_type: str


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
    ) -> dict[int, list[DeliveryRef]]:
        """Create a delivery of each event for every active endpoint of its tenant that
        subscribed to its type, in fair order across tenants (delivery/fairness.py); the
        engine is woken once they are committed. The deliveries of each event, by event."""
        conn = await session.connection()
        table = await self.store.routing(conn, sorted({e.tenant_id for e in events}))
        virtual_time = fairness.virtual_time(table.queue_head, now)
        routes: dict[tuple[int, str], list[int]] = {}
        rows: list[NewDelivery] = []
        for event in events:
            key = (event.tenant_id, event.event_type)
            if key not in routes:
                routes[key] = [
                    route.endpoint_id
                    for route in table.endpoints.get(event.tenant_id, ())
                    if subscribed(route.event_types, event.event_type)
                ]
            endpoint_ids = routes[key]
            if not endpoint_ids:
                continue
            queue_keys = self.clock.assign(event.tenant_id, len(endpoint_ids), virtual_time)
            rows.extend(
                NewDelivery(event.tenant_id, event.id, endpoint_id, queue_key)
                for endpoint_id, queue_key in zip(endpoint_ids, queue_keys, strict=True)
            )
        by_event: dict[int, list[DeliveryRef]] = {}
        if rows:
            refs = await self.store.insert_deliveries(conn, rows, now)
            for ref in refs:
                by_event.setdefault(ref.event_pk, []).append(ref)
            self._wake_after_commit(session, [ref.id for ref in refs])
        return by_event

    # -- reads -------------------------------------------------------------------------------

    @staticmethod
    async def delivery_states(
        session: AsyncSession, *, tenant_id: int, event_pk: int
    ) -> list[tuple[int, int, DeliveryStatus]]:
        return await repository.delivery_states(session, tenant_id=tenant_id, event_pk=event_pk)

    @staticmethod
    async def deliveries_of_event(
        session: AsyncSession, *, tenant_id: int, event_pk: int
    ) -> list[tuple[Delivery, list[Attempt]]]:
        return await repository.deliveries_of_event(session, tenant_id=tenant_id, event_pk=event_pk)

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
        cursor: int | None,
    ) -> list[tuple[DeadLetter, str]]:
        return await repository.list_dead_letters(
            session,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            resolved=resolved,
            limit=limit,
            cursor=cursor,
        )

    @staticmethod
    async def get_dead_letter(
        session: AsyncSession, *, tenant_id: int, entry_id: int
    ) -> tuple[DeadLetter, str]:
        found = await repository.get_dead_letter(session, tenant_id=tenant_id, entry_id=entry_id)
        if found is None:
            raise NotFound(f"dead-letter entry {entry_id} not found")
        return found

    async def retry_dead_letter(
        self, session: AsyncSession, *, tenant_id: int, entry_id: int
    ) -> int:
        """Deliver the entry's delivery again with a fresh cycle; its id."""
        entry, _ = await self.get_dead_letter(session, tenant_id=tenant_id, entry_id=entry_id)
        if entry.resolved:
            raise Conflict(f"dead-letter entry {entry_id} is already resolved ({entry.resolution})")
        await self._requeue(session, [entry])
        return entry.delivery_id

    async def retry_dead_letters(
        self,
        session: AsyncSession,
        *,
        tenant_id: int,
        endpoint_id: int | None,
        event_type: str | None,
    ) -> list[int]:
        """Retry every unresolved entry matching the filter (up to MAX_BULK_RETRY per call)."""
        entries = await repository.unresolved_dead_letters(
            session,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            limit=MAX_BULK_RETRY,
        )
        await self._requeue(session, entries)
        return [e.delivery_id for e in entries]

    async def _requeue(self, session: AsyncSession, entries: Sequence[DeadLetter]) -> None:
        if not entries:
            return
        pairs = [(e.id, e.delivery_id) for e in entries]
        await self.store.requeue_dead(await session.connection(), entries=pairs, now=utcnow())
        self._wake_after_commit(session, [d for _, d in pairs])

    async def discard_dead_letter(
        self, session: AsyncSession, *, tenant_id: int, entry_id: int
    ) -> tuple[DeadLetter, str]:
        """Resolve the entry without delivering it (``resolution: discarded``)."""
        entry, event_id = await self.get_dead_letter(
            session, tenant_id=tenant_id, entry_id=entry_id
        )
        if not entry.resolved:
            conn = await session.connection()
            await self.store.discard_dead_letter(conn, entry_id=entry.id, now=utcnow())
            await session.refresh(entry)
        return entry, event_id


async def refresh_gauges(session: AsyncSession) -> None:
    """Set the gauges that describe database state (DLQ size, due backlog) from the database."""
    metrics.DLQ_SIZE.set(await repository.count_unresolved_dead_letters(session))
    metrics.DELIVERIES_DUE.set(await repository.count_due(session, now=utcnow()))
