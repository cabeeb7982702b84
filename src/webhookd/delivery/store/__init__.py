"""The delivery store: the one owner of the delivery row, and the only SQL in the project
that differs between databases.

:class:`DeliveryStore` is the protocol; :mod:`.postgres` and :mod:`.sqlite` implement it
on the statements both share (:mod:`.common`). Every change of a delivery's state goes
through a store method that applies the pure functions of ``delivery/lifecycle.py``.
Store methods work across tenants (the engine claims for all of them): callers scope what
they pass in (``delivery/service.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from webhookd.delivery.job import Outcome
from webhookd.delivery.policy import EndpointPolicy
from webhookd.delivery.store.retention import Batch, Cutoff, Purged
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
from webhookd.models import DeliveryStatus

__all__ = [
    "Batch",
    "Claim",
    "Cutoff",
    "DeliveryRef",
    "DeliveryStore",
    "InsertedEvent",
    "NewDelivery",
    "NewEvent",
    "Purged",
    "PutBack",
    "Recorded",
    "Route",
    "RoutingTable",
    "create_store",
]


class DeliveryStore(Protocol):
    async def insert_events(
        self, conn: AsyncConnection, events: Sequence[NewEvent], now: dt.datetime
    ) -> list[InsertedEvent]:
        """Insert events; a conflict on (tenant_id, event_id) is a duplicate and is left
        out of the answer."""
        ...

    async def routing(self, conn: AsyncConnection, tenant_ids: Sequence[int]) -> RoutingTable:
        """The tenants' active endpoints and the head of the live queue, in one query."""
        ...

    async def insert_deliveries(
        self,
        conn: AsyncConnection,
        rows: Sequence[NewDelivery],
        now: dt.datetime,
        *,
        maybe_held: Collection[int] = (),
    ) -> list[DeliveryRef]:
        """New deliveries in their starting state (``lifecycle.new_delivery``), in the order
        of ``rows``; those of the ``maybe_held`` endpoints still held (``health.held``, read
        locked) start waiting."""
        ...

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
        """Lease up to ``limit`` due deliveries to ``owner`` in fair order, each endpoint
        within its cap; load what sending them needs; hand back at once those their
        endpoint's health or FIFO turn holds back (``Claim.put_back``)."""
        ...

    async def lease_new(
        self,
        conn: AsyncConnection,
        *,
        delivery_ids: Sequence[int],
        owner: str,
        now: dt.datetime,
        lease: dt.timedelta,
    ) -> Claim:
        """Lease deliveries inserted in this transaction to ``owner`` (the engine of the
        process that publishes them, which has room for them), gated as a claim is; those
        whose endpoint has a rate limit are handed back due at once (``Claim.put_back``)."""
        ...

    async def put_back(
        self, conn: AsyncConnection, *, owner: str, items: Sequence[PutBack], now: dt.datetime
    ) -> None:
        """Hand claimed deliveries back unattempted (no attempt used)."""
        ...

    async def record_outcomes(
        self,
        conn: AsyncConnection,
        *,
        owner: str,
        outcomes: Sequence[Outcome],
        policy: EndpointPolicy,
        now: dt.datetime,
    ) -> Recorded:
        """Write each attempt and move its delivery on (``lifecycle.after_attempt``),
        dead-lettering those without attempts left; skip deliveries whose lease ``owner``
        lost. Update the endpoints' health (breaker, disable), release FIFO turns, and
        send operational notices."""
        ...

    async def enable_endpoint(
        self, conn: AsyncConnection, *, endpoint_id: int, now: dt.datetime
    ) -> list[int]:
        """Enable an endpoint (breaker reset) and make due what waited for it."""
        ...

    async def release_waiting(
        self, conn: AsyncConnection, *, endpoint_id: int, now: dt.datetime
    ) -> list[int]:
        """Make due what waits (no next attempt) for an endpoint that is not disabled."""
        ...

    async def renew_leases(
        self,
        conn: AsyncConnection,
        *,
        owner: str,
        delivery_ids: Sequence[int],
        now: dt.datetime,
        lease: dt.timedelta,
    ) -> int:
        """Extend ``owner``'s leases of ``delivery_ids`` (attempts still out) to ``lease``
        from now (``lifecycle.renewed``); those it no longer holds are left alone."""
        ...

    async def release_leases(self, conn: AsyncConnection, *, owner: str, now: dt.datetime) -> int:
        """Hand back ``owner``'s unfinished claims, due at once (``lifecycle.released``)."""
        ...

    async def requeue(
        self,
        conn: AsyncConnection,
        *,
        delivery_ids: Sequence[int],
        statuses: Collection[DeliveryStatus] = (DeliveryStatus.DEAD,),
        now: dt.datetime,
    ) -> list[int]:
        """Send finished deliveries again (dead-letter retry, replay, recovery): each of
        ``delivery_ids`` whose status is one of ``statuses`` (dead, succeeded) gets a fresh
        cycle (``lifecycle.requeued``), and its unresolved dead-letter entries are resolved
        as ``retried``. Live deliveries are left alone, so that sending again never makes
        two live deliveries of one event to one endpoint. The ids requeued, in order."""
        ...

    async def purge_batch(
        self, conn: AsyncConnection, *, cutoff: Cutoff, after: int, limit: int
    ) -> Batch:
        """Of the next ``limit`` events past the id ``after`` older than ``cutoff``, delete
        those none of whose deliveries is live, with their deliveries, attempts and
        dead-letter entries. What went, and the cursor of the next batch."""
        ...

    async def purge_jobs(self, conn: AsyncConnection, *, cutoff: Cutoff) -> int:
        """Delete the finished jobs older than ``cutoff``; how many."""
        ...

    async def count_purgeable(self, conn: AsyncConnection, *, cutoff: Cutoff) -> Purged:
        """What a purge at ``cutoff`` would delete, counted in full (a dry run)."""
        ...

    async def discard_dead_letter(
        self, conn: AsyncConnection, *, entry_id: int, now: dt.datetime
    ) -> None:
        """Resolve an entry as ``discarded`` without delivering it."""
        ...


def create_store(dialect: str, *, decrypt: Callable[[str], str]) -> DeliveryStore:
    """The store of a database (``sqlite`` or ``postgresql``); ``decrypt`` opens the
    signing secrets stored encrypted."""
    if dialect == "postgresql":
        from webhookd.delivery.store.postgres import PostgresStore

        return PostgresStore(decrypt)
    if dialect == "sqlite":
        from webhookd.delivery.store.sqlite import SQLiteStore

        return SQLiteStore(decrypt)
    raise ValueError(f"no delivery store for {dialect!r}")
