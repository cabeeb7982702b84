"""Publishing: routing to subscribed endpoints, idempotency (also under concurrency),
per-tenant isolation, and reading events and their deliveries back."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from tests.api_errors import assert_error

EVENTS = "/api/v1/events"
QUIET = 0.5  # how long to listen for deliveries that must not arrive


def unique(name: str) -> str:
    """A receiver path (or id) no other test uses: the receiver lives for the whole module."""
    return f"/{uuid.uuid4().hex[:12]}/{name}"


def delivered_to(response) -> set[int]:
    return {d["endpoint_id"] for d in response.json()["deliveries"]}


def wait_for_deliveries(client, event_id: str, count: int, timeout: float = 10.0) -> list[dict]:
    """Poll (bounded) until ``count`` deliveries of the event have succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{EVENTS}/{event_id}/deliveries")
        assert response.status_code == 200, response.text
        deliveries = response.json()
        if sum(d["status"] == "succeeded" for d in deliveries) >= count:
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.02)


# --- routing ----------------------------------------------------------------------------


def test_routing_follows_subscriptions(tenant, receiver) -> None:
    paths = {name: unique(name) for name in ("user", "order", "all", "inactive")}
    user = tenant.add_endpoint(receiver.url(paths["user"]), event_types=["user.created"])
    order = tenant.add_endpoint(receiver.url(paths["order"]), event_types=["order.completed"])
    everything = tenant.add_endpoint(receiver.url(paths["all"]), event_types=[])
    inactive = tenant.add_endpoint(
        receiver.url(paths["inactive"]), event_types=["user.created"], is_active=False
    )
    assert inactive["is_active"] is False

    response = tenant.publish("user.created", event_id="evt_route_1", user_id="u1")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["duplicate"] is False
    assert body["event_id"] == "evt_route_1"
    assert body["event_type"] == "user.created"
    assert delivered_to(response) == {user["id"], everything["id"]}
    assert len(body["deliveries"]) == 2
    assert {d["status"] for d in body["deliveries"]} == {"pending"}

    for name in ("user", "all"):
        (request,) = receiver.wait_for(1, paths[name], timeout=5)
        assert request.header("X-Webhook-Event-Type") == "user.created"
        delivered = orjson.loads(request.body)
        assert delivered["event_id"] == "evt_route_1"
        assert delivered["payload"] == {"user_id": "u1"}
    time.sleep(QUIET)
    counts = {name: len(receiver.received(path)) for name, path in paths.items()}
    assert counts == {"user": 1, "order": 0, "all": 1, "inactive": 0}

    response = tenant.publish("order.completed", event_id="evt_route_2", order_id="o1")
    assert response.status_code == 202, response.text
    assert delivered_to(response) == {order["id"], everything["id"]}
    receiver.wait_for(1, paths["order"], timeout=5)
    receiver.wait_for(2, paths["all"], timeout=5)
    time.sleep(QUIET)
    counts = {name: len(receiver.received(path)) for name, path in paths.items()}
    assert counts == {"user": 1, "order": 1, "all": 2, "inactive": 0}


def test_reactivated_and_resubscribed_endpoints_route_from_now_on(tenant, receiver) -> None:
    path = unique("toggle")
    endpoint = tenant.add_endpoint(receiver.url(path), event_types=["a.b"], is_active=False)
    assert tenant.publish("a.b").json()["deliveries"] == []

    patch = f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}"
    assert tenant.client.patch(patch, json={"is_active": True}).status_code == 200
    assert delivered_to(tenant.publish("a.b")) == {endpoint["id"]}
    assert tenant.publish("c.d").json()["deliveries"] == []

    assert tenant.client.patch(patch, json={"event_types": ["c.d"]}).status_code == 200
    assert tenant.publish("a.b").json()["deliveries"] == []
    assert delivered_to(tenant.publish("c.d")) == {endpoint["id"]}

    receiver.wait_for(2, path, timeout=5)
    time.sleep(QUIET)
    assert len(receiver.received(path)) == 2


def test_publish_without_a_matching_endpoint(tenant, receiver) -> None:
    response = tenant.publish("nobody.listens", event_id="evt_lonely")
    assert response.status_code == 202, response.text
    assert response.json()["deliveries"] == []
    assert response.json()["duplicate"] is False

    path = unique("orders-only")
    tenant.add_endpoint(receiver.url(path), event_types=["order.completed"])
    response = tenant.publish("user.created", event_id="evt_unmatched")
    assert response.status_code == 202, response.text
    assert response.json()["deliveries"] == []
    time.sleep(QUIET)
    assert receiver.received(path) == []

    # The events are recorded all the same.
    assert tenant.client.get(f"{EVENTS}/evt_lonely").status_code == 200
    assert tenant.client.get(f"{EVENTS}/evt_unmatched").status_code == 200


def test_other_tenants_endpoints_never_receive_my_events(tenant, other_tenant, receiver):
    mine, theirs = unique("mine"), unique("theirs")
    tenant.add_endpoint(receiver.url(mine))
    other_tenant.add_endpoint(receiver.url(theirs))
    response = tenant.publish("user.created")
    assert response.status_code == 202, response.text
    assert len(response.json()["deliveries"]) == 1
    receiver.wait_for(1, mine, timeout=5)
    time.sleep(QUIET)
    assert receiver.received(theirs) == []


# --- idempotency ------------------------------------------------------------------------


def test_same_event_id_again_is_a_duplicate(tenant, receiver) -> None:
    path = unique("dup")
    tenant.add_endpoint(receiver.url(path))
    first = tenant.publish("user.created", event_id="evt_dup", version=1)
    assert first.status_code == 202, first.text
    receiver.wait_for(1, path, timeout=5)

    again = tenant.publish("user.created", event_id="evt_dup", version=1)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["created_at"] == first.json()["created_at"]
    assert [d["id"] for d in again.json()["deliveries"]] == [
        d["id"] for d in first.json()["deliveries"]
    ]

    # Another payload or type under the same id: a conflict, nothing changes.
    for response in (
        tenant.publish("user.created", event_id="evt_dup", version=2),
        tenant.publish("order.completed", event_id="evt_dup", version=1),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "idempotency_conflict"

    time.sleep(QUIET)
    assert len(receiver.received(path)) == 1
    stored = tenant.client.get(f"{EVENTS}/evt_dup").json()
    assert stored["payload"] == {"version": 1}
    assert stored["event_type"] == "user.created"


def test_concurrent_duplicates_create_one_event(server, tenant, receiver) -> None:
    paths = [unique("race-a"), unique("race-b")]
    endpoints = [tenant.add_endpoint(receiver.url(p))["id"] for p in paths]
    body = {"event_id": "evt_race", "event_type": "user.created", "payload": {"n": 1}}
    callers = 20
    barrier = threading.Barrier(callers)

    def publish(_: int):
        with server.client(**{"X-API-Key": tenant.api_key}) as client:
            client.get("/health")  # connect before the barrier
            barrier.wait(timeout=10)
            return client.post(EVENTS, json=body)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        responses = list(pool.map(publish, range(callers)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [202], [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert len({b["id"] for b in bodies}) == 1
    assert [b["duplicate"] for b in bodies].count(False) == 1
    delivery_sets = {frozenset(d["id"] for d in b["deliveries"]) for b in bodies}
    assert len(delivery_sets) == 1
    assert {d["endpoint_id"] for d in bodies[0]["deliveries"]} == set(endpoints)

    for path in paths:
        receiver.wait_for(1, path, timeout=5)
    time.sleep(QUIET)
    assert [len(receiver.received(p)) for p in paths] == [1, 1]
    listed = tenant.client.get(EVENTS).json()["items"]
    assert [e["event_id"] for e in listed] == ["evt_race"]


def test_same_event_id_under_two_tenants_is_two_events(tenant, other_tenant, receiver):
    mine, theirs = unique("twin-a"), unique("twin-b")
    tenant.add_endpoint(receiver.url(mine))
    other_tenant.add_endpoint(receiver.url(theirs))

    first = tenant.publish("user.created", event_id="evt_shared", owner="first")
    second = other_tenant.publish("user.created", event_id="evt_shared", owner="second")
    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    assert second.json()["duplicate"] is False
    assert first.json()["id"] != second.json()["id"]

    (to_first,) = receiver.wait_for(1, mine, timeout=5)
    (to_second,) = receiver.wait_for(1, theirs, timeout=5)
    assert orjson.loads(to_first.body)["payload"] == {"owner": "first"}
    assert orjson.loads(to_second.body)["payload"] == {"owner": "second"}
    assert tenant.client.get(f"{EVENTS}/evt_shared").json()["payload"] == {"owner": "first"}
    assert other_tenant.client.get(f"{EVENTS}/evt_shared").json()["payload"] == {"owner": "second"}


# --- reading back -----------------------------------------------------------------------


def test_get_event_and_its_deliveries(tenant, receiver) -> None:
    paths = [unique("read-a"), unique("read-b")]
    endpoints = [tenant.add_endpoint(receiver.url(p))["id"] for p in paths]
    payload = {"user": {"id": "u7", "tags": ["a", "b"]}, "amount": 12.5, "ok": True, "none": None}
    published = tenant.client.post(
        EVENTS, json={"event_id": "evt_read", "event_type": "user.created", "payload": payload}
    )
    assert published.status_code == 202, published.text

    event = tenant.client.get(f"{EVENTS}/evt_read")
    assert event.status_code == 200, event.text
    assert event.json() == {
        "id": published.json()["id"],
        "event_id": "evt_read",
        "event_type": "user.created",
        "payload": payload,
        "channels": None,  # issue 17: published without channels
        "created_at": published.json()["created_at"],
    }

    deliveries = wait_for_deliveries(tenant.client, "evt_read", count=2)
    assert [d["endpoint_id"] for d in deliveries] == endpoints
    assert [d["id"] for d in deliveries] == [d["id"] for d in published.json()["deliveries"]]
    for delivery in deliveries:
        assert delivery["status"] == "succeeded"
        assert delivery["attempt_count"] == 1
        assert delivery["last_status_code"] == 200
        assert delivery["delivered_at"] is not None
        (attempt,) = delivery["attempts"]
        assert attempt["attempt_number"] == 1
        assert attempt["response_status"] == 200
        assert attempt["succeeded"] is True
        assert isinstance(attempt["duration_ms"], int | float)
        assert attempt["duration_ms"] >= 0
        assert attempt["error_kind"] is None


def test_deliveries_list_every_attempt(tenant, receiver) -> None:
    path = unique("flaky")
    receiver.plan(path, 503, 500)  # two failures, then the default 200
    tenant.add_endpoint(receiver.url(path))
    assert tenant.publish("user.created", event_id="evt_flaky").status_code == 202

    (delivery,) = wait_for_deliveries(tenant.client, "evt_flaky", count=1)
    assert delivery["attempt_count"] == 3
    assert [a["attempt_number"] for a in delivery["attempts"]] == [1, 2, 3]
    assert [a["response_status"] for a in delivery["attempts"]] == [503, 500, 200]
    assert [a["succeeded"] for a in delivery["attempts"]] == [False, False, True]
    assert all(a["duration_ms"] >= 0 for a in delivery["attempts"])
    assert len(receiver.received(path)) == 3


def test_event_without_endpoints_has_no_deliveries(tenant) -> None:
    assert tenant.publish("x.y", event_id="evt_none").status_code == 202
    response = tenant.client.get(f"{EVENTS}/evt_none/deliveries")
    assert response.status_code == 200, response.text
    assert response.json() == []


@pytest.mark.parametrize("suffix", ["", "/deliveries"])
def test_unknown_event_is_404(tenant, suffix) -> None:
    assert_error(tenant.client.get(f"{EVENTS}/evt_never_published{suffix}"), 404, "not_found")


@pytest.mark.parametrize("suffix", ["", "/deliveries"])
def test_another_tenants_event_is_404(tenant, other_tenant, receiver, suffix) -> None:
    tenant.add_endpoint(receiver.url(unique("private")))
    assert tenant.publish("user.created", event_id="evt_private", secret="s3").status_code == 202
    response = other_tenant.client.get(f"{EVENTS}/evt_private{suffix}")
    assert_error(response, 404, "not_found")
    assert "s3" not in response.text
    assert other_tenant.client.get(EVENTS).json()["items"] == []


def test_event_routes_require_an_api_key(server, admin, tenant) -> None:
    assert tenant.publish("user.created", event_id="evt_auth").status_code == 202
    for client in (admin, server.client(), server.client(**{"X-API-Key": "whk_wrong"})):
        assert_error(client.get(EVENTS), 401, "unauthorized")
        assert_error(client.get(f"{EVENTS}/evt_auth"), 401, "unauthorized")
        assert_error(client.get(f"{EVENTS}/evt_auth/deliveries"), 401, "unauthorized")


def test_list_events_filters_by_type_newest_first(tenant, other_tenant) -> None:
    for event_id, event_type in [
        ("evt_l1", "user.created"),
        ("evt_l2", "order.completed"),
        ("evt_l3", "user.created"),
        ("evt_l4", "user.deleted"),
    ]:
        assert tenant.publish(event_type, event_id=event_id).status_code == 202
    assert other_tenant.publish("user.created", event_id="evt_other").status_code == 202

    everything = tenant.client.get(EVENTS)
    assert everything.status_code == 200, everything.text
    assert [e["event_id"] for e in everything.json()["items"]] == [
        "evt_l4",
        "evt_l3",
        "evt_l2",
        "evt_l1",
    ]
    assert everything.json()["next_cursor"] is None

    users = tenant.client.get(EVENTS, params={"event_type": "user.created"}).json()
    assert [e["event_id"] for e in users["items"]] == ["evt_l3", "evt_l1"]
    assert {e["event_type"] for e in users["items"]} == {"user.created"}
    assert tenant.client.get(EVENTS, params={"event_type": "nothing"}).json()["items"] == []

    first = tenant.client.get(EVENTS, params={"limit": 3}).json()
    assert [e["event_id"] for e in first["items"]] == ["evt_l4", "evt_l3", "evt_l2"]
    rest = tenant.client.get(EVENTS, params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [e["event_id"] for e in rest["items"]] == ["evt_l1"]
    assert rest["next_cursor"] is None

    error = assert_error(
        tenant.client.get(EVENTS, params={"event_type": "bad type"}), 422, "validation_error"
    )
    assert error["fields"][0]["field"] == "event_type"
