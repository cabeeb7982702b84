"""The dead-letter queue through the API: list, filter, page, inspect, retry, discard."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import TenantCtx
from tests.fixtures.delivery import deliveries, wait_deliveries, wait_final
from tests.fixtures.server import LiveServer, running_server

QUIET = 0.6  # three poll intervals: long enough for an unwanted delivery to show up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """Two attempts per cycle, so deliveries die within a fraction of a second."""
    with running_server(tmp_path_factory, "dlq", backend=backend, max_attempts=2) as srv:
        yield srv


def kill(tenant: TenantCtx, event_id: str, event_type: str = "user.created") -> dict:
    """Publish an event whose every delivery fails for good; return its delivery (one)."""
    response = tenant.publish(event_type, event_id=event_id)
    assert response.status_code == 202, response.text
    (delivery,) = wait_deliveries(tenant.client, event_id)
    assert delivery["status"] == "dead", delivery
    return delivery


def dlq_list(tenant: TenantCtx, **params) -> dict:
    response = tenant.client.get("/api/v1/dlq", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def entry_for(tenant: TenantCtx, delivery_id: int) -> dict:
    (entry,) = [e for e in dlq_list(tenant)["items"] if e["delivery_id"] == delivery_id]
    return entry


def test_dead_delivery_is_listed_and_readable(tenant, receiver) -> None:
    receiver.plan("/dlq/basic", default=500, body=b"nope")
    endpoint = tenant.add_endpoint(receiver.url("/dlq/basic"))
    delivery = kill(tenant, "evt_dlq_basic", "order.failed")

    page = dlq_list(tenant)
    (entry,) = page["items"]
    assert page["next_cursor"] is None
    assert entry["delivery_id"] == delivery["id"]
    assert entry["endpoint_id"] == endpoint["id"]
    assert entry["event_id"] == "evt_dlq_basic"
    assert entry["event_type"] == "order.failed"
    assert entry["attempts"] == 2
    assert "http_status" in entry["last_error"] and "500" in entry["last_error"]
    assert entry["resolved"] is False
    assert entry["resolution"] is None
    assert entry["resolved_at"] is None

    single = tenant.client.get(f"/api/v1/dlq/{entry['id']}")
    assert single.status_code == 200, single.text
    assert single.json() == entry
    assert dlq_list(tenant, resolved="true")["items"] == []
    assert tenant.client.get("/api/v1/dlq/999999").status_code == 404


def test_filters(tenant, receiver) -> None:
    receiver.plan("/dlq/filter-a", default=500)
    receiver.plan("/dlq/filter-b", default=500)
    a = tenant.add_endpoint(receiver.url("/dlq/filter-a"), event_types=["user.created"])
    b = tenant.add_endpoint(receiver.url("/dlq/filter-b"))  # every event type
    for n in range(2):
        response = tenant.publish("user.created", event_id=f"evt_filter_u{n}")
        assert response.status_code == 202
        assert len(response.json()["deliveries"]) == 2
    kill(tenant, "evt_filter_o", "order.failed")
    wait_deliveries(tenant.client, "evt_filter_u0")
    wait_deliveries(tenant.client, "evt_filter_u1")

    def pairs(**params) -> set[tuple[int, str]]:
        return {(e["endpoint_id"], e["event_id"]) for e in dlq_list(tenant, **params)["items"]}

    assert len(pairs()) == 5
    assert pairs(endpoint_id=a["id"]) == {(a["id"], "evt_filter_u0"), (a["id"], "evt_filter_u1")}
    assert pairs(endpoint_id=b["id"]) == {
        (b["id"], "evt_filter_u0"),
        (b["id"], "evt_filter_u1"),
        (b["id"], "evt_filter_o"),
    }
    assert pairs(event_type="order.failed") == {(b["id"], "evt_filter_o")}
    assert len(pairs(event_type="user.created")) == 4
    assert pairs(endpoint_id=a["id"], event_type="order.failed") == set()
    assert pairs(resolved="true") == set()

    discarded = dlq_list(tenant, event_type="order.failed")["items"][0]
    assert tenant.client.delete(f"/api/v1/dlq/{discarded['id']}").status_code == 200
    assert pairs(resolved="true") == {(b["id"], "evt_filter_o")}
    assert pairs(event_type="order.failed") == set()
    assert len(pairs()) == 4
    assert len(pairs(resolved="false")) == 4


def test_pagination(tenant, receiver) -> None:
    receiver.plan("/dlq/pages", default=500)
    tenant.add_endpoint(receiver.url("/dlq/pages"))
    for n in range(5):
        assert tenant.publish(event_id=f"evt_page_{n}").status_code == 202
    for n in range(5):
        wait_final(tenant.client, f"evt_page_{n}")

    everything = dlq_list(tenant)["items"]
    assert len(everything) == 5
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)  # newest first

    seen: list[int] = []
    cursor = None
    sizes = []
    for _ in range(10):  # bounded
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = dlq_list(tenant, **params)
        sizes.append(len(page["items"]))
        seen.extend(e["id"] for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert seen == ids
    assert tenant.client.get("/api/v1/dlq", params={"limit": 0}).status_code == 422
    assert tenant.client.get("/api/v1/dlq", params={"limit": 101}).status_code == 422


def test_retry_one_entry_starts_a_new_cycle(tenant, receiver) -> None:
    receiver.plan("/dlq/retry", default=500)
    tenant.add_endpoint(receiver.url("/dlq/retry"))
    delivery = kill(tenant, "evt_dlq_retry")
    entry = entry_for(tenant, delivery["id"])
    assert len(receiver.received("/dlq/retry")) == 2

    receiver.plan("/dlq/retry", default=200)
    response = tenant.client.post(f"/api/v1/dlq/{entry['id']}/retry")
    assert response.status_code == 200, response.text
    assert response.json() == {"retried": 1, "delivery_ids": [delivery["id"]]}

    requests = receiver.wait_for(3, "/dlq/retry")
    after = wait_final(tenant.client, "evt_dlq_retry")
    assert after["id"] == delivery["id"]
    assert after["status"] == "succeeded"
    assert after["cycle"] == 2
    assert after["attempt_count"] == 1
    assert [(a["cycle"], a["attempt_number"], a["succeeded"]) for a in after["attempts"]] == [
        (1, 1, False),
        (1, 2, False),
        (2, 1, True),
    ]
    assert after["attempts"][:2] == delivery["attempts"]  # the old attempts are kept as they were
    assert requests[2].header("X-Webhook-Attempt") == "1"
    assert requests[2].header("webhook-id") == requests[0].header("webhook-id")
    assert requests[2].body == requests[0].body

    resolved = tenant.client.get(f"/api/v1/dlq/{entry['id']}").json()
    assert resolved["resolved"] is True
    assert resolved["resolution"] == "retried"
    assert resolved["resolved_at"] is not None
    assert dlq_list(tenant)["items"] == []
    assert [e["id"] for e in dlq_list(tenant, resolved="true")["items"]] == [entry["id"]]

    again = tenant.client.post(f"/api/v1/dlq/{entry['id']}/retry")
    assert again.status_code == 409, again.text
    time.sleep(QUIET)
    assert len(receiver.received("/dlq/retry")) == 3
    assert deliveries(tenant.client, "evt_dlq_retry") == [after]


def test_retry_that_fails_again_dead_letters_again(tenant, receiver) -> None:
    receiver.plan("/dlq/redead", default=500)
    tenant.add_endpoint(receiver.url("/dlq/redead"))
    delivery = kill(tenant, "evt_dlq_redead")
    first = entry_for(tenant, delivery["id"])

    response = tenant.client.post(f"/api/v1/dlq/{first['id']}/retry")
    assert response.status_code == 200, response.text
    after = wait_deliveries(
        tenant.client,
        "evt_dlq_redead",
        lambda ds: ds[0]["status"] == "dead" and ds[0]["cycle"] == 2,
    )[0]
    assert [(a["cycle"], a["attempt_number"]) for a in after["attempts"]] == [
        (1, 1),
        (1, 2),
        (2, 1),
        (2, 2),
    ]
    (second,) = dlq_list(tenant)["items"]
    assert second["id"] != first["id"]
    assert second["delivery_id"] == delivery["id"]
    assert second["attempts"] == 2
    assert tenant.client.get(f"/api/v1/dlq/{first['id']}").json()["resolution"] == "retried"
    assert len(receiver.received("/dlq/redead")) == 4


def test_bulk_retry_by_event_type(tenant, receiver) -> None:
    receiver.plan("/dlq/bulk-orders", default=500)
    receiver.plan("/dlq/bulk-users", default=500)
    tenant.add_endpoint(receiver.url("/dlq/bulk-orders"), event_types=["order.failed"])
    tenant.add_endpoint(receiver.url("/dlq/bulk-users"), event_types=["user.deleted"])
    orders = [kill(tenant, f"evt_bulk_o{n}", "order.failed")["id"] for n in range(2)]
    user = kill(tenant, "evt_bulk_u", "user.deleted")["id"]
    assert len(dlq_list(tenant)["items"]) == 3

    receiver.plan("/dlq/bulk-orders", default=200)
    receiver.plan("/dlq/bulk-users", default=200)
    bad = tenant.client.post("/api/v1/dlq/retry", json={"event_kind": "order.failed"})
    assert bad.status_code == 422, bad.text
    response = tenant.client.post("/api/v1/dlq/retry", json={"event_type": "order.failed"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["retried"] == 2
    assert sorted(body["delivery_ids"]) == sorted(orders)

    for n in range(2):
        assert wait_final(tenant.client, f"evt_bulk_o{n}")["status"] == "succeeded"
    receiver.wait_for(6, "/dlq/bulk-orders")
    time.sleep(QUIET)
    assert deliveries(tenant.client, "evt_bulk_u")[0]["status"] == "dead"
    assert len(receiver.received("/dlq/bulk-users")) == 2
    (left,) = dlq_list(tenant)["items"]
    assert left["delivery_id"] == user
    assert left["resolved"] is False

    nothing = tenant.client.post("/api/v1/dlq/retry", json={"event_type": "order.failed"})
    assert nothing.json() == {"retried": 0, "delivery_ids": []}

    rest = tenant.client.post("/api/v1/dlq/retry")  # no filter: everything left
    assert rest.status_code == 200, rest.text
    assert rest.json() == {"retried": 1, "delivery_ids": [user]}
    assert wait_final(tenant.client, "evt_bulk_u")["status"] == "succeeded"
    assert dlq_list(tenant)["items"] == []


def test_discard(tenant, receiver) -> None:
    receiver.plan("/dlq/discard", default=500)
    tenant.add_endpoint(receiver.url("/dlq/discard"))
    delivery = kill(tenant, "evt_dlq_discard")
    entry = entry_for(tenant, delivery["id"])
    receiver.plan("/dlq/discard", default=200)  # a delivery now would succeed: it must not happen

    response = tenant.client.delete(f"/api/v1/dlq/{entry['id']}")
    assert response.status_code == 200, response.text
    discarded = response.json()
    assert discarded["id"] == entry["id"]
    assert discarded["resolved"] is True
    assert discarded["resolution"] == "discarded"
    assert discarded["resolved_at"] is not None
    assert tenant.client.get(f"/api/v1/dlq/{entry['id']}").json() == discarded

    assert tenant.client.post(f"/api/v1/dlq/{entry['id']}/retry").status_code == 409
    assert tenant.client.post("/api/v1/dlq/retry").json() == {"retried": 0, "delivery_ids": []}
    time.sleep(QUIET)
    assert len(receiver.received("/dlq/discard")) == 2
    assert deliveries(tenant.client, "evt_dlq_discard") == [delivery]
    assert dlq_list(tenant)["items"] == []
    assert [e["id"] for e in dlq_list(tenant, resolved="true")["items"]] == [entry["id"]]


def test_other_tenant_cannot_see_or_touch_entries(tenant, other_tenant, receiver) -> None:
    receiver.plan("/dlq/private", default=500)
    endpoint = tenant.add_endpoint(receiver.url("/dlq/private"))
    delivery = kill(tenant, "evt_dlq_private", "order.failed")
    entry = entry_for(tenant, delivery["id"])
    receiver.plan("/dlq/private", default=200)  # any retry would now be delivered

    other = other_tenant.client
    url = f"/api/v1/dlq/{entry['id']}"
    assert dlq_list(other_tenant)["items"] == []
    assert dlq_list(other_tenant, resolved="true")["items"] == []
    assert dlq_list(other_tenant, endpoint_id=endpoint["id"])["items"] == []
    for response in (other.get(url), other.post(f"{url}/retry"), other.delete(url)):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
    for selection in (None, {"endpoint_id": endpoint["id"]}, {"event_type": "order.failed"}):
        response = other.post("/api/v1/dlq/retry", json=selection)
        assert response.status_code == 200, response.text
        assert response.json() == {"retried": 0, "delivery_ids": []}

    time.sleep(QUIET)
    assert tenant.client.get(url).json() == entry
    assert deliveries(tenant.client, "evt_dlq_private") == [delivery]
    assert len(receiver.received("/dlq/private")) == 2
    assert tenant.client.get(url, headers={"X-API-Key": "whk_not-a-key"}).status_code == 401
