"""The whole path once: publish → signed delivery → recorded attempt."""

from __future__ import annotations


def test_publish_is_delivered(tenant, receiver) -> None:
    endpoint = tenant.add_endpoint(receiver.url("/smoke"))
    response = tenant.publish("user.created", event_id="evt_smoke", user_id="u1")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["duplicate"] is False
    assert [d["endpoint_id"] for d in body["deliveries"]] == [endpoint["id"]]
    (request,) = receiver.wait_for(1, "/smoke")
    assert request.header("X-Webhook-Event-Type") == "user.created"
    assert b'"user_id":"u1"' in request.body
