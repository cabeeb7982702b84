"""No wait on the network inside a write transaction (security round 2, item 1).

Every network wait of webhookd (a URL's DNS lookup, a delivery, a Redis check, a message to
the broker) calls ``db.network_wait`` first, which raises inside a write transaction. This
module checks the guard itself, then drives the API's writing routes and the engine with
the SSRF guard on (so URLs are resolved) and a host name as the target: a wait moved into
a transaction would fail these requests or deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import create_tenant
from tests.fixtures.delivery import wait_final
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, make_settings, running_server
from webhookd.db import (
    Database,
    NetworkWaitInTransaction,
    after_commit,
    after_rollback,
    network_wait,
)


def test_the_guard_refuses_a_network_wait_inside_a_write_transaction(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(make_settings(tmp_path / "guard.db"))
        network_wait("outside")  # fine
        async with db.write():
            with pytest.raises(NetworkWaitInTransaction, match="a lookup inside a write"):
                network_wait("a lookup")
        async with db.write_connection():
            with pytest.raises(NetworkWaitInTransaction):
                network_wait("a lookup")
            # A task started inside the transaction inherits the mark.
            with pytest.raises(NetworkWaitInTransaction):
                await asyncio.create_task(asyncio.to_thread(network_wait, "a thread"))
        network_wait("after")  # fine again
        async with db.read():
            network_wait("in a read")  # reads hold no lock
        await db.dispose()

    asyncio.run(scenario())


def test_after_commit_and_after_rollback_run_for_their_outcome_only(tmp_path: Path) -> None:
    """What a write transaction reserved in memory (``after_rollback``: a publish's slots in
    the engine) is given back when it fails, and only then."""

    async def scenario() -> None:
        db = Database(make_settings(tmp_path / "callbacks.db"))
        ran: list[str] = []
        async with db.write() as session:
            after_commit(session, lambda: ran.append("committed"))
            after_rollback(session, lambda: ran.append("undone"))
        assert ran == ["committed"]
        with pytest.raises(RuntimeError, match="boom"):
            async with db.write() as session:
                after_commit(session, lambda: ran.append("committed again"))
                after_rollback(session, lambda: ran.append("undone"))
                raise RuntimeError("boom")
        assert ran == ["committed", "undone"]
        await db.dispose()

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    # The SSRF guard on: endpoint URLs are resolved, deliveries go through its resolver.
    with running_server(
        tmp_path_factory,
        backend=backend,
        allow_private_targets=False,
        allowed_networks="127.0.0.0/8,::1/128",
        max_attempts=2,
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as client:
        yield client


def test_the_writing_routes_and_the_engine_wait_on_the_network_outside_transactions(
    server: LiveServer, admin: httpx.Client, receiver: Receiver
) -> None:
    tenant = create_tenant(server, admin)
    by_name = receiver.url("/named").replace("127.0.0.1", "localhost")
    endpoint = tenant.add_endpoint(by_name, event_types=["user.created"])  # resolved first
    patched = tenant.client.patch(
        f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}",
        json={"url": by_name + "/v2"},
    )
    assert patched.status_code == 200, patched.text
    assert tenant.publish(event_id="evt_named").status_code == 202
    assert wait_final(tenant.client, "evt_named")["status"] == "succeeded"
    assert receiver.received("/named/v2")

    receiver.plan("/named-down", default=500)
    failing = tenant.add_endpoint(by_name.replace("/named", "/named-down"), event_types=["x.y"])
    assert tenant.publish("x.y", event_id="evt_down").status_code == 202
    delivery = wait_final(tenant.client, "evt_down")
    assert delivery["status"] == "dead" and delivery["endpoint_id"] == failing["id"]
    receiver.plan("/named-down", default=200)
    retried = tenant.client.post("/api/v1/dlq/retry", json={})
    assert retried.status_code == 200 and retried.json()["retried"] == 1
    assert wait_final(tenant.client, "evt_down")["status"] == "succeeded"
    for path in ("rotate-secret", "rotate-api-key"):
        assert admin.post(f"/api/v1/tenants/{tenant.id}/{path}").status_code == 200
