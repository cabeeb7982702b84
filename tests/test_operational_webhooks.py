"""Operational webhooks for real: a tenant with `operational_webhook_url` is sent signed
`endpoint.disabled`, `endpoint.enabled` and `delivery.dead_lettered` notices through the
durable engine; failures of those notices never produce notices themselves."""

from __future__ import annotations

import json
import time

from standardwebhooks import Webhook

from tests.fixtures.delivery import wait_final, wait_until
from tests.fixtures.receiver import Receiver


def notices(receiver: Receiver, path: str) -> list[dict]:
    return [json.loads(r.body) for r in receiver.received(path)]


def set_operational_url(admin, tenant, url: str | None) -> None:
    """The tenant's operational webhook URL (a tenant PATCH: admin key)."""
    response = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"operational_webhook_url": url})
    assert response.status_code == 200, response.text
    assert response.json()["operational_webhook_url"] == url


def test_disabled_enabled_and_dead_lettered_notices(admin, tenant, receiver) -> None:
    receiver.plan("/ops/notices")
    set_operational_url(admin, tenant, receiver.url("/ops/notices"))
    receiver.plan("/ops/gone", 410, default=200)
    gone = tenant.add_endpoint(receiver.url("/ops/gone"), event_types=["a.gone"])
    receiver.plan("/ops/dead", default=500)
    dead = tenant.add_endpoint(
        receiver.url("/ops/dead"), event_types=["a.dead"], retry_schedule=[0.05]
    )

    assert tenant.publish("a.gone", event_id="evt_ops_gone").status_code == 202
    assert tenant.publish("a.dead", event_id="evt_ops_dead").status_code == 202
    assert wait_final(tenant.client, "evt_ops_dead")["status"] == "dead"
    receiver.wait_for(2, "/ops/notices")
    by_type = {n["event_type"]: n for n in notices(receiver, "/ops/notices")}
    disabled = by_type["endpoint.disabled"]["payload"]
    assert disabled["endpoint_id"] == gone["id"] and disabled["reason"] == "gone"
    dead_lettered = by_type["delivery.dead_lettered"]["payload"]
    assert dead_lettered["endpoint_id"] == dead["id"]
    assert dead_lettered["event_id"] == "evt_ops_dead" and "500" in dead_lettered["last_error"]

    response = tenant.client.post(f"/api/v1/tenants/{tenant.id}/endpoints/{gone['id']}/enable")
    assert response.status_code == 200, response.text
    receiver.wait_for(3, "/ops/notices")
    enabled = [
        n for n in notices(receiver, "/ops/notices") if n["event_type"] == "endpoint.enabled"
    ]
    assert enabled[0]["payload"]["endpoint_id"] == gone["id"]

    # Signed with the tenant's secret, like every delivery.
    request = receiver.received("/ops/notices")[0]
    Webhook(tenant.secret_key).verify(request.body, request.headers)

    # Hidden from the tenant's endpoints, events and deliveries.
    listed = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints").json()["items"]
    assert {e["id"] for e in listed} == {gone["id"], dead["id"]}
    assert not [
        d
        for d in tenant.client.get("/api/v1/deliveries").json()["items"]
        if d["endpoint_id"] not in (gone["id"], dead["id"])
    ]


def test_failing_notices_make_no_notices(admin, tenant, receiver) -> None:
    receiver.plan("/ops/broken", default=500)
    set_operational_url(admin, tenant, receiver.url("/ops/broken"))
    receiver.plan("/ops/dead2", default=500)
    tenant.add_endpoint(receiver.url("/ops/dead2"), retry_schedule=[0.05])
    assert tenant.publish(event_id="evt_ops_dead2").status_code == 202
    assert wait_final(tenant.client, "evt_ops_dead2")["status"] == "dead"
    # The notice is tried by the default schedule (7 attempts) and then given up on.
    wait_until(lambda: len(receiver.received("/ops/broken")) >= 7, 15, "notice attempts")
    time.sleep(1.0)
    kinds = {n["event_type"] for n in notices(receiver, "/ops/broken")}
    assert kinds == {"delivery.dead_lettered"}
    assert len(receiver.received("/ops/broken")) == 7


def test_no_url_no_notices(admin, tenant, receiver) -> None:
    receiver.plan("/ops/quiet-gone", 410)
    tenant.add_endpoint(receiver.url("/ops/quiet-gone"))
    assert tenant.publish(event_id="evt_quiet").status_code == 202
    receiver.wait_for(1, "/ops/quiet-gone")
    set_operational_url(admin, tenant, None)
