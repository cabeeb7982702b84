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


@pytest.fixture(scope="module")
def no_poll_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """Few slots per endpoint, and a poll so rare that only wake-ups deliver."""
    with running_server(
        tmp_path_factory,
        "nopoll",
        backend=backend,
        delivery_concurrency=8,  # an endpoint starts at 1 slot, a quick one grows to 4
        endpoint_concurrency=4,
        poll_interval=30.0,
        request_timeout=20.0,
    ) as srv:
        yield srv


def test_events_published_behind_a_saturated_endpoints_backlog_go_out_at_once(
    no_poll_server: LiveServer, receiver: Receiver
) -> None:
    # A slow endpoint (12 s per answer, one slot: none ends during the test, so no
    # attempt's end wakes the engine) keeps a backlog at the head of the queue. Once a
    # claim has seen it, the engine searches past it only from the queue keys of what was
    # published since. Each later event, of the same tenant and of another one (whose keys
    # start at the head of the queue), must go out on its publish's wake-up, not on the
    # 30 s poll. (Deliveries found from the head instead would pass too: the floor's
    # mistakes are what this catches, e.g. a floor above the new rows.)
    with no_poll_server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        busy = create_tenant(no_poll_server, admin)
        other = create_tenant(no_poll_server, admin)
    receiver.plan("/backlog-slow", delay=12.0)
    busy.add_endpoint(receiver.url("/backlog-slow"))
    busy.add_endpoint(receiver.url("/backlog-fast"))
    other.add_endpoint(receiver.url("/backlog-other"))
    for n in range(8):
        assert busy.publish(event_id=f"backlog_{n}").status_code == 202
    receiver.wait_for(8, "/backlog-fast", timeout=10)
    time.sleep(0.3)
    for n in range(3):
        for tenant, path, count in (
            (busy, "/backlog-fast", 9 + n),
            (other, "/backlog-other", 1 + n),
        ):
            assert tenant.publish(event_id=f"later_{n}").status_code == 202
            published = time.monotonic()
            arrived = receiver.wait_for(count, path, timeout=10)[-1]
            assert arrived.at - published < 2.0, f"event {n} to {path} waited for the poll"
            time.sleep(0.3)  # recorded: no attempt's end wakes the engine for the next one
    assert len(receiver.received("/backlog-slow")) == 1, "the backlog went out: proves nothing"
    busy.client.close()
    other.client.close()
