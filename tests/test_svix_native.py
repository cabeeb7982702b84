"""Issue 17 on the native API: an endpoint's own signing secret (its tenant's until it has
one; rotated with a grace period, as a tenant's secret is), the tenant's delivery format,
endpoint uid/metadata/channels and events' channels."""

from __future__ import annotations

import itertools

import httpx
from standardwebhooks import Webhook

from tests.api_errors import assert_error
from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import LiveServer

_n = itertools.count(1)


def _path() -> str:
    return f"/native-svix/{next(_n)}"


def _ep(tenant: TenantCtx, endpoint_id: str) -> str:
    return f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint_id}"


def _verifies(secret: str, received) -> bool:
    try:
        Webhook(secret).verify(received.body, received.headers)
    except Exception:
        return False
    return True


def test_endpoint_secret_defaults_to_the_tenant_and_rotates_on_its_own(
    server: LiveServer, admin: httpx.Client, receiver: Receiver
) -> None:
    tenant = create_tenant(server, admin)
    own_path, other_path = _path(), _path()
    rotated = tenant.add_endpoint(receiver.url(own_path))
    untouched = tenant.add_endpoint(receiver.url(other_path))
    shown = tenant.client.get(_ep(tenant, rotated["id"]) + "/secret")
    assert shown.status_code == 200, shown.text
    assert shown.json()["secret_key"] == tenant.secret_key  # the tenant's, as before
    response = tenant.client.post(
        _ep(tenant, rotated["id"]) + "/rotate-secret", json={"grace_period_seconds": 600}
    )
    assert response.status_code == 200, response.text
    new_secret = response.json()["secret_key"]
    assert new_secret != tenant.secret_key and response.json()["previous_secret_expires_at"]
    assert tenant.client.get(_ep(tenant, rotated["id"]) + "/secret").json()["secret_key"] == (
        new_secret
    )
    assert tenant.publish().status_code == 202
    (own,) = receiver.wait_for(1, own_path)
    (other,) = receiver.wait_for(1, other_path)
    assert _verifies(new_secret, own) and _verifies(tenant.secret_key, own)  # grace period
    assert _verifies(tenant.secret_key, other) and not _verifies(new_secret, other)
    assert own.header("svix-id") is None  # a native tenant: webhookd's format
    assert set(httpx.Response(200, content=own.body).json()) == {
        "event_id",
        "event_type",
        "payload",
        "created_at",
    }
    missing = tenant.client.get(_ep(tenant, "ep_01JEKX6V4W8S8N0C7W0R6FQ2ZB") + "/secret")
    assert_error(missing, 404, "not_found")
    assert untouched["id"] != rotated["id"]


def test_svix_delivery_format(server: LiveServer, admin: httpx.Client, receiver: Receiver) -> None:
    tenant = create_tenant(server, admin)
    changed = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"delivery_format": "svix"})
    assert changed.status_code == 200 and changed.json()["delivery_format"] == "svix"
    path = _path()
    tenant.add_endpoint(receiver.url(path))
    assert tenant.publish(order=7).status_code == 202
    (got,) = receiver.wait_for(1, path)
    assert httpx.Response(200, content=got.body).json() == {"order": 7}  # the payload alone
    for name in ("id", "timestamp", "signature"):
        assert got.header(f"svix-{name}") == got.header(f"webhook-{name}")
    assert _verifies(tenant.secret_key, got)
    refused = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"delivery_format": "xml"})
    assert refused.status_code == 422


def test_channels_uid_and_metadata(
    server: LiveServer, admin: httpx.Client, receiver: Receiver
) -> None:
    tenant = create_tenant(server, admin)
    everything, in_a = _path(), _path()
    tenant.add_endpoint(receiver.url(everything))
    ep = tenant.add_endpoint(
        receiver.url(in_a), uid="only-a", channels=["a"], metadata={"team": "x"}
    )
    assert (ep["uid"], ep["channels"], ep["metadata"]) == ("only-a", ["a"], {"team": "x"})
    assert tenant.client.get(_ep(tenant, "only-a")).json()["id"] == ep["id"]  # by uid
    taken = tenant.client.post(
        f"/api/v1/tenants/{tenant.id}/endpoints", json={"url": receiver.url("/x"), "uid": "only-a"}
    )
    assert_error(taken, 409, "uid_taken")
    for n, channels in enumerate((["b"], ["a", "c"], None)):
        event = {"event_id": f"ch-{n}", "event_type": "t", "payload": {"n": n}}
        if channels:
            event["channels"] = channels
        assert tenant.client.post("/api/v1/events", json=event).status_code == 202
    receiver.wait_for(3, everything)
    (got,) = receiver.wait_for(1, in_a)
    assert httpx.Response(200, content=got.body).json()["payload"] == {"n": 1}
    read = tenant.client.get("/api/v1/events/ch-1")
    assert read.json()["channels"] == ["a", "c"]
    bad = tenant.client.post(
        "/api/v1/events",
        json={"event_id": "ch-bad", "event_type": "t", "payload": {}, "channels": ["a b"]},
    )
    assert bad.status_code == 422
