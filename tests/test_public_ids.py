"""Issue 13: every tenant, endpoint, event, delivery and dead-letter entry has a public id
(a prefixed ULID) that the API, the webhook headers and the logs use; row ids stay inside,
and pagination cursors are opaque."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.api_errors import assert_error, field_names
from tests.conftest import create_tenant
from tests.fixtures.delivery import wait_final
from tests.fixtures.processes import ApiProcess
from tests.fixtures.server import ADMIN_KEY, running_server

ULID = "[0-9A-HJKMNP-TV-Z]{26}"


def _is(kind: str, value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(f"{kind}_{ULID}", value) is not None


def test_the_api_shows_public_ids_only(tenant, receiver) -> None:
    assert _is("tnt", tenant.id)
    endpoint = tenant.add_endpoint(receiver.url("/ids"))
    assert _is("ep", endpoint["id"]) and endpoint["tenant_id"] == tenant.id
    accepted = tenant.publish(event_id="evt_ids").json()
    assert _is("evt", accepted["id"])
    (delivery,) = accepted["deliveries"]
    assert _is("dlv", delivery["id"]) and delivery["endpoint_id"] == endpoint["id"]
    final = wait_final(tenant.client, "evt_ids")
    assert final["id"] == delivery["id"] and final["event_id"] == "evt_ids"
    assert tenant.client.get(f"/api/v1/events/{accepted['id']}").json()["event_id"] == "evt_ids"
    (request,) = receiver.received("/ids")
    assert request.header("webhook-id") == delivery["id"]


def test_webhook_ids_never_repeat_across_databases(tmp_path_factory, backend, receiver) -> None:
    """A fresh database used to start again at dlv_1: receivers that drop duplicates by
    webhook-id dropped real events."""
    seen = []
    for name in ("first", "second"):
        with running_server(tmp_path_factory, name, backend=backend) as server:
            with server.client(**{"X-Admin-Key": "whadm_test-admin-key"}) as admin:
                tenant = create_tenant(server, admin)
            tenant.add_endpoint(receiver.url(f"/fresh-{name}"))
            assert tenant.publish(event_id="evt_same").status_code == 202
            seen.append(wait_final(tenant.client, "evt_same")["id"])
            tenant.client.close()
    assert seen[0] != seen[1]
    assert [r.header("webhook-id") for r in receiver.received("/fresh-first")] == [seen[0]]


def test_cursors_are_opaque_and_refused_when_forged(tenant, receiver) -> None:
    for n in range(3):
        tenant.add_endpoint(receiver.url(f"/page/{n}"))
    first = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints?limit=2").json()
    cursor = first["next_cursor"]
    assert isinstance(cursor, str) and not cursor.isdigit()
    rest = tenant.client.get(
        f"/api/v1/tenants/{tenant.id}/endpoints", params={"limit": 2, "cursor": cursor}
    ).json()
    ids = [e["id"] for e in first["items"] + rest["items"]]
    assert len(ids) == len(set(ids)) == 3 and rest["next_cursor"] is None
    for forged in ("5", "c1.", "c2.AAAAAAAAAAA", "c1.!!!!!!!!!!!"):
        response = tenant.client.get("/api/v1/events", params={"cursor": forged})
        assert field_names(assert_error(response, 422, "validation_error")) == ["cursor"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tenants/1",
        "/api/v1/tenants/{tenant}/endpoints/1",
        "/api/v1/tenants/{tenant}/endpoints/ep_01JEKX6V4W8S8N0C7W0R6FQ2ZB",
        "/api/v1/dlq/1",
        "/api/v1/dlq/dlq_01JEKX6V4W8S8N0C7W0R6FQ2ZB",
    ],
)
def test_row_ids_and_unknown_public_ids_are_404(tenant, path: str) -> None:
    response = tenant.client.get(path.replace("{tenant}", tenant.id))
    assert_error(response, 404, "not_found")


def test_logs_name_deliveries_by_their_public_ids(tmp_path, receiver) -> None:
    """A real `webhookd serve` at INFO: its delivery log names the delivery, the tenant and
    the endpoint by the ids the API shows."""
    api = ApiProcess(
        {
            "WEBHOOKD_DATABASE_URL": f"sqlite:///{tmp_path / 'logs.db'}",
            "WEBHOOKD_LOG_LEVEL": "INFO",
        },
        tmp_path / "webhookd.log",
    )
    api.start()
    try:
        with httpx.Client(base_url=api.url, headers={"X-Admin-Key": ADMIN_KEY}) as admin:
            created = admin.post("/api/v1/tenants", json={"name": "l", "email": "l@x.co"}).json()
        with httpx.Client(base_url=api.url, headers={"X-API-Key": created["api_key"]}) as own:
            endpoint = own.post(
                f"/api/v1/tenants/{created['id']}/endpoints", json={"url": receiver.url("/log")}
            ).json()
            published = own.post(
                "/api/v1/events",
                json={"event_id": "evt_logged", "event_type": "a.b", "payload": {}},
            ).json()
            wait_final(own, "evt_logged")
    finally:
        api.terminate()
    (delivery,) = published["deliveries"]
    lines = [json.loads(line) for line in api.log.read_text().splitlines() if line.startswith("{")]
    (succeeded,) = [line for line in lines if line.get("event") == "delivery.succeeded"]
    assert succeeded["delivery_id"] == delivery["id"]
    assert succeeded["tenant_id"] == created["id"] and succeeded["endpoint_id"] == endpoint["id"]
