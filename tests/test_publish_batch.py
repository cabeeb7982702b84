"""Group commit: one batch holding the same event twice, another tenant's event with the same
event_id, and an old duplicate — each answered as if published alone."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from tests.fixtures.db import BACKENDS, TestDatabase
from tests.fixtures.server import make_settings
from webhookd.db import Database
from webhookd.delivery.fairness import FairClock
from webhookd.delivery.service import DeliveryService
from webhookd.delivery.store import create_store
from webhookd.event.batcher import PublishBatcher, TenantGone
from webhookd.event.schemas import EventAccepted, EventCreate
from webhookd.event.service import publish_events
from webhookd.migrate import upgrade
from webhookd.models import Endpoint, Tenant


class RecordingQueue:
    """Records the delivery ids handed to the queue (after each commit)."""

    def __init__(self) -> None:
        self.submitted: list[list[int]] = []

    async def start(self) -> None: ...

    def submit(self, delivery_ids: Sequence[int], from_key: int | None = None) -> None:
        self.submitted.append(list(delivery_ids))

    def lessee(self) -> None:
        return None  # no engine here: every delivery waits for a claim

    async def stop(self) -> None: ...


def _deliveries(db: Database, queue: RecordingQueue) -> DeliveryService:
    store = create_store(db.engine.dialect.name, decrypt=str)
    return DeliveryService(store=store, queue=queue, clock=FairClock())


def _event(event_id: str, event_type: str = "user.created") -> EventCreate:
    return EventCreate(event_id=event_id, event_type=event_type, payload={"id": event_id})


async def _scenario(db: Database) -> None:
    async with db.write() as session:
        tenants = [
            Tenant(
                name=n,
                email=f"{n}@example.com",
                rate_limit=10,
                api_key_hash=n,
                api_key_prefix="whk_",
                secret_encrypted="x",
            )
            for n in ("a", "b")
        ]
        session.add_all(tenants)
        await session.flush()
        a, b = (t.id for t in tenants)
        session.add_all(
            [
                Endpoint(tenant_id=a, url="https://a.example/1", event_types=[]),
                Endpoint(tenant_id=a, url="https://a.example/2", event_types=["order.paid"]),
                Endpoint(tenant_id=b, url="https://b.example/1", event_types=[]),
            ]
        )
    queue = RecordingQueue()
    deliveries = _deliveries(db, queue)
    async with db.write() as session:
        (old,) = await publish_events(
            session, deliveries=deliveries, batch=[(a, _event("evt_old"))]
        )
    queue.submitted.clear()
    async with db.write() as session:
        results = await publish_events(
            session,
            deliveries=deliveries,
            batch=[
                (a, _event("evt_1")),
                (a, _event("evt_1")),  # the same event again in the same batch
                (b, _event("evt_1")),  # same id, another tenant: another event
                (a, _event("evt_old")),  # published in an earlier batch
                (a, _event("evt_2", "order.paid")),
            ],
        )
    first, again, other, old_again, paid = results
    assert not first.duplicate and len(first.deliveries) == 1
    assert again.duplicate and again.id == first.id and again.deliveries == first.deliveries
    assert not other.duplicate and other.id != first.id and len(other.deliveries) == 1
    assert old_again.duplicate and old_again.id == old.id
    assert not paid.duplicate and len(paid.deliveries) == 2  # catch-all + order.paid
    # Handed to the queue once, after the commit: each new delivery (by row id), nothing
    # twice.
    new = [d.id for r in (first, other, paid) for d in r.deliveries]
    assert len(queue.submitted) == 1 and len(set(queue.submitted[0])) == len(new) == 4


def _run_on(tmp_path: Path, backend: str, scenario: Callable[[Database], Awaitable[None]]) -> None:
    database = TestDatabase(backend, tmp_path)
    try:
        settings = make_settings(database.url)
        upgrade(settings)

        async def run() -> None:
            db = Database(settings)
            try:
                await scenario(db)
            finally:
                await db.dispose()

        asyncio.run(run())
    finally:
        database.drop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_batch_behaves_like_separate_publishes(tmp_path: Path, backend: str) -> None:
    _run_on(tmp_path, backend, _scenario)


async def _poisoned_batch(db: Database) -> None:
    async with db.write() as session:
        tenant = Tenant(
            name="c",
            email="c@example.com",
            rate_limit=10,
            api_key_hash="c",
            api_key_prefix="whk_",
            secret_encrypted="x",
        )
        session.add(tenant)
    batcher = PublishBatcher(db, _deliveries(db, RecordingQueue()))
    await batcher.start()
    try:
        gone, ok = await asyncio.gather(
            batcher.publish(987654321, _event("evt_gone")),  # e.g. deleted after its auth
            batcher.publish(tenant.id, _event("evt_ok")),
            return_exceptions=True,
        )
    finally:
        await batcher.stop()
    assert isinstance(gone, TenantGone) and gone.status_code == 401
    assert isinstance(ok, EventAccepted) and not ok.duplicate


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_publish_does_not_fail_its_batch(tmp_path: Path, backend: str) -> None:
    _run_on(tmp_path, backend, _poisoned_batch)


class _DeadlockOnce(Exception):
    sqlstate = "40P01"  # what asyncpg reports for "deadlock detected"


class DeadlockedOnce(DeliveryService):
    """The first fan-out is chosen as a deadlock victim, as PostgreSQL does when a publish
    and delivering processes lock endpoint rows in opposite orders."""

    failed = False

    async def enqueue_for_events(self, session, events, now):  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed = True
            raise DBAPIError("INSERT INTO deliveries …", None, _DeadlockOnce("deadlock detected"))
        return await super().enqueue_for_events(session, events, now)


async def _deadlock_victim(db: Database) -> None:
    async with db.write() as session:
        tenant = Tenant(
            name="d",
            email="d@example.com",
            rate_limit=10,
            api_key_hash="d",
            api_key_prefix="whk_",
            secret_encrypted="x",
        )
        session.add(tenant)
        await session.flush()
        session.add(Endpoint(tenant_id=tenant.id, url="https://d.example/1", event_types=[]))
    queue = RecordingQueue()
    deliveries = DeadlockedOnce(
        store=create_store(db.engine.dialect.name, decrypt=str), queue=queue, clock=FairClock()
    )
    batcher = PublishBatcher(db, deliveries)
    await batcher.start()
    try:
        accepted = await batcher.publish(tenant.id, _event("evt_deadlock"))
    finally:
        await batcher.stop()
    # Run again in a new transaction: accepted (not a 500), once, with its delivery.
    assert deliveries.failed and not accepted.duplicate and len(accepted.deliveries) == 1
    assert len(queue.submitted) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_deadlock_victim_batch_is_published_again(tmp_path: Path, backend: str) -> None:
    _run_on(tmp_path, backend, _deadlock_victim)
