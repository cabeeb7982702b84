"""Pooled connections to receivers: reused while fresh, never once idle for longer than
``WEBHOOKD_DELIVERY_KEEPALIVE``. Receivers close idle connections themselves (uvicorn and
Node after 5 s); reusing one they are closing fails the attempt, so webhookd lets go of it
first (default 4 s). Here the keep-alive is 1 s and the receiver never closes: which
connection each delivery arrived on is told by the sender's port."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fixtures.delivery import wait_final
from tests.fixtures.server import LiveServer, running_server

KEEPALIVE = 1.0  # long enough for the second delivery to follow the first on a busy host


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory, "keepalive", backend=backend, delivery_keepalive=KEEPALIVE
    ) as srv:
        yield srv


def deliver(tenant, event_id: str) -> None:
    response = tenant.publish(event_id=event_id)
    assert response.status_code == 202, response.text
    assert wait_final(tenant.client, event_id)["status"] == "succeeded"


def test_a_fresh_connection_is_reused_and_an_idle_one_is_not(server, tenant, receiver) -> None:
    receiver.plan("/keepalive")
    tenant.add_endpoint(receiver.url("/keepalive"))
    deliver(tenant, "evt_keepalive_1")
    deliver(tenant, "evt_keepalive_2")  # within the keep-alive: the same connection
    time.sleep(KEEPALIVE * 2.5)
    deliver(tenant, "evt_keepalive_3")  # idle past it: a new connection
    first, second, third = (r.peer for r in receiver.wait_for(3, "/keepalive"))
    assert first == second
    assert third != second
