"""A lease shorter than an endpoint's answer: the engine renews the leases of attempts still
out, so a slow answer is neither claimed again nor sent twice, on SQLite and PostgreSQL.
(A process that dies stops renewing: tests/test_crash_recovery.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import create_tenant
from tests.fixtures.delivery import wait_final
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server

# Seconds; the receiver answers after three leases. The renewer extends a lease between a
# third and 0.58 of it after it was set: 1.5 s leaves 0.6 s for a busy machine (the whole
# suite) to write the renewal; 1 s left 0.4 s, and the suite once missed it.
LEASE = 1.5
ANSWER_AFTER = 4.5
EVENTS = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory, "lease", backend=backend, lease_seconds=LEASE, request_timeout=8.0
    ) as srv:
        yield srv


def test_a_slow_answer_keeps_its_lease_and_is_sent_once(
    server: LiveServer, receiver: Receiver
) -> None:
    receiver.plan("/slow", delay=ANSWER_AFTER)
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(server, admin)
    tenant.add_endpoint(receiver.url("/slow"))
    event_ids = [f"evt_lease_{n}" for n in range(EVENTS)]
    for event_id in event_ids:
        assert tenant.publish(event_id=event_id).status_code == 202

    finals = [wait_final(tenant.client, event_id, timeout=30) for event_id in event_ids]
    assert [d["status"] for d in finals] == ["succeeded"] * EVENTS
    assert [d["attempt_count"] for d in finals] == [1] * EVENTS
    # Without renewal the rows fall due one lease after the claim, while their answers are
    # still 3 s away, and the poll (0.2 s) claims and sends each of them again.
    ids = [r.header("webhook-id") for r in receiver.received("/slow")]
    assert len(ids) == EVENTS, f"sent {len(ids)} times for {EVENTS} events: {sorted(ids)}"


def test_the_delivery_records_one_attempt(server: LiveServer, receiver: Receiver) -> None:
    """The delivery's record agrees: one attempt of one cycle, answered 200."""
    receiver.plan("/slow2", delay=ANSWER_AFTER / 2)
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        tenant = create_tenant(server, admin)
    tenant.add_endpoint(receiver.url("/slow2"))
    assert tenant.publish(event_id="evt_lease_attempts").status_code == 202
    delivery = wait_final(tenant.client, "evt_lease_attempts", timeout=30)
    response = tenant.client.get(f"/api/v1/deliveries/{delivery['id']}")
    assert response.status_code == 200, response.text
    attempts = response.json()["attempts"]
    assert [(a["cycle"], a["response_status"]) for a in attempts] == [(1, 200)]
