"""Recording an attempt locks its endpoint's row without blocking a publish (PostgreSQL).

A publish inserts deliveries, and PostgreSQL's foreign-key check takes FOR KEY SHARE on each
endpoint row they reference. The recorder locks the endpoints whose health it decides; with
FOR UPDATE it waited for those publishes (and they for it, when a publish had inserted for
another endpoint first: a deadlock, issue 14). FOR NO KEY UPDATE does not conflict with
FOR KEY SHARE, and still lets one recorder at a time decide an endpoint's health."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import create_tenant
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server
from webhookd.delivery.store.postgres import PostgresStore
from webhookd.ids import Kind, parse_id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory, "locks", backend="postgresql") as srv:
        yield srv


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


def _dsn(server: LiveServer) -> str:
    """The server's database for asyncpg (its settings hold the SQLAlchemy URL)."""
    return server.settings.database_url.replace("postgresql+asyncpg://", "postgresql://")


async def _lock_while_a_publish_holds_key_share(server: LiveServer, endpoint_pk: int) -> None:
    publish = await asyncpg.connect(_dsn(server))
    engine = create_async_engine(server.settings.database_url, pool_size=1)
    store = PostgresStore(str)  # the recorder's read of endpoint health, on the driver
    try:
        async with publish.transaction():
            # What the foreign key of a delivery being inserted takes on its endpoint.
            await publish.execute(
                "SELECT 1 FROM endpoints WHERE id = $1 FOR KEY SHARE", endpoint_pk
            )
            async with engine.begin() as conn:
                await conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                found = await store.health_of(conn, [endpoint_pk])
                assert endpoint_pk in found
            # And two recorders still exclude each other (one endpoint's health at a time).
            async with engine.begin() as first:
                await store.health_of(first, [endpoint_pk])
                other = await asyncpg.connect(_dsn(server))
                try:
                    async with other.transaction():
                        await other.execute("SET LOCAL lock_timeout = '200ms'")
                        with pytest.raises(asyncpg.exceptions.LockNotAvailableError):
                            await other.execute(
                                "SELECT 1 FROM endpoints WHERE id = $1 FOR NO KEY UPDATE",
                                endpoint_pk,
                            )
                finally:
                    await other.close()
    finally:
        await publish.close()
        await engine.dispose()


def test_recording_does_not_wait_for_a_publish(server: LiveServer) -> None:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(server, admin)
    endpoint = tenant.add_endpoint("https://hooks.example.com/locks")
    pk = asyncio.run(_endpoint_pk(server, endpoint["id"]))
    asyncio.run(_lock_while_a_publish_holds_key_share(server, pk))


async def _endpoint_pk(server: LiveServer, endpoint_id: str) -> int:
    conn = await asyncpg.connect(_dsn(server))
    try:
        pk = await conn.fetchval(
            "SELECT id FROM endpoints WHERE public_id = $1", parse_id(Kind.ENDPOINT, endpoint_id)
        )
    finally:
        await conn.close()
    assert pk is not None
    return int(pk)


async def _hold_endpoint(server: LiveServer, endpoint_pk: int, seconds: float) -> None:
    """What a recorder deciding the endpoint's health holds, for ``seconds``."""
    conn = await asyncpg.connect(_dsn(server))
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT 1 FROM endpoints WHERE id = $1 FOR NO KEY UPDATE", endpoint_pk
            )
            await asyncio.sleep(seconds)
    finally:
        await conn.close()


def test_a_claim_does_not_wait_for_an_endpoint_a_recorder_holds(
    server: LiveServer, receiver: Receiver
) -> None:
    """A claim gating a FIFO endpoint's rows skips the endpoint while another transaction
    holds it (it would wait, and deadlock with a recorder that wants the rows the claim
    holds): the other endpoints' deliveries go out meanwhile, the FIFO one right after."""
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(server, admin)
    receiver.plan("/locks/fifo")
    receiver.plan("/locks/free")
    fifo = tenant.add_endpoint(receiver.url("/locks/fifo"), ordering="fifo")
    tenant.add_endpoint(receiver.url("/locks/free"))
    pk = asyncio.run(_endpoint_pk(server, fifo["id"]))
    hold = 3.0
    holder = threading.Thread(target=asyncio.run, args=(_hold_endpoint(server, pk, hold),))
    holder.start()
    try:
        time.sleep(0.3)  # the lock is taken
        started = time.monotonic()
        assert tenant.publish(event_id="held-1").status_code == 202
        free = receiver.wait_for(1, "/locks/free", timeout=hold)
        assert free[0].at - started < 1.0  # not behind the held endpoint
        fifo_requests = receiver.wait_for(1, "/locks/fifo", timeout=hold + 5)
        assert fifo_requests[0].at - started >= hold - 0.5  # only once it was free
    finally:
        holder.join()
