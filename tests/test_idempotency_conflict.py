"""Issue 13: the same event_id again with the same event is a duplicate (200, the original);
with another type or payload it is a 409 `idempotency_conflict` naming the event, and
nothing is delivered or changed."""

from __future__ import annotations

import pytest

from tests.api_errors import assert_error


def _publish(tenant, event_type="user.created", **payload):
    return tenant.client.post(
        "/api/v1/events",
        json={"event_id": "evt_same_id", "event_type": event_type, "payload": payload},
    )


@pytest.mark.parametrize("warm", [False, True])  # route, then the fast path
def test_same_id_other_event_is_a_409(tenant, receiver, warm: bool) -> None:
    tenant.add_endpoint(receiver.url("/idem"))
    if warm:
        assert tenant.publish(event_id="warm-up").status_code == 202
    first = _publish(tenant, n=1)
    assert first.status_code == 202
    again = _publish(tenant, n=1)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    for response in (_publish(tenant, n=2), _publish(tenant, "order.paid", n=1)):
        error = assert_error(response, 409, "idempotency_conflict")
        assert "evt_same_id" in error["message"]
    stored = tenant.client.get("/api/v1/events/evt_same_id").json()
    assert stored["payload"] == {"n": 1} and stored["event_type"] == "user.created"
