"""Isolation between endpoints and between tenants, through the API with a real receiver:
a slow endpoint holds at most its cap of delivery slots, and one tenant's backlog does not
make another tenant's event wait its turn behind the whole backlog."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import create_tenant
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """Four delivery slots in all, one per endpoint: queues form quickly."""
    with running_server(
        tmp_path_factory, "fair", backend=backend, delivery_concurrency=4, endpoint_concurrency=1
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def small_admin(small_server: LiveServer) -> Iterator[httpx.Client]:
    with small_server.client(**{"X-Admin-Key": ADMIN_KEY}) as client:
        yield client


def test_slow_endpoint_does_not_hold_up_the_others(
    small_server: LiveServer, small_admin: httpx.Client, receiver: Receiver
) -> None:
    # Every event goes to a slow endpoint (1.5 s per answer) and a fast one. Without a
    # per-endpoint cap the slow endpoint's deliveries take all four slots and the fast
    # endpoint gets one batch per 1.5 s; with the cap it holds one slot.
    receiver.plan("/hol-slow", delay=1.5)
    tenant = create_tenant(small_server, small_admin)
    tenant.add_endpoint(receiver.url("/hol-slow"))
    tenant.add_endpoint(receiver.url("/hol-fast"))
    for n in range(10):
        assert tenant.publish(event_id=f"hol_{n}").status_code == 202
    published = time.monotonic()
    fast = receiver.wait_for(10, "/hol-fast", timeout=10)
    assert fast[-1].at - published < 2.0, "the fast endpoint waited behind the slow one"
    assert len(receiver.received("/hol-slow")) <= 3  # one at a time, 1.5 s each
    tenant.client.close()


def test_one_tenants_backlog_does_not_delay_another_tenant(
    small_server: LiveServer, small_admin: httpx.Client, receiver: Receiver
) -> None:
    # Tenant A queues 160 deliveries to four endpoints answering in 100 ms: with four slots,
    # ~4 s of work that keeps every slot busy (no endpoint cap is what holds A back). In
    # arrival order, tenant B's single event would wait for all of it.
    flood = create_tenant(small_server, small_admin)
    for n in range(4):
        receiver.plan(f"/flood-{n}", delay=0.1)
        flood.add_endpoint(receiver.url(f"/flood-{n}"))
    quiet = create_tenant(small_server, small_admin)
    quiet.add_endpoint(receiver.url("/quiet"))
    for n in range(40):
        assert flood.publish(event_id=f"flood_{n}").status_code == 202
    assert quiet.publish(event_id="quiet_1").status_code == 202
    published = time.monotonic()
    (arrived,) = receiver.wait_for(1, "/quiet", timeout=15)
    flooded = sum(len(receiver.received(f"/flood-{n}")) for n in range(4))
    assert arrived.at - published < 1.0, "tenant B's event waited behind tenant A's backlog"
    assert flooded < 150, "A's backlog was gone before B published: the test proves nothing"
    for n in range(4):  # and A loses nothing
        receiver.wait_for(40, f"/flood-{n}", timeout=30)
    flood.client.close()
    quiet.client.close()
