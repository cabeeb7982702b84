"""Sending again, through the API with a real receiver: test sends, replaying an event, and
recovery jobs (an endpoint's dead letters of a time window, resent in batches), on SQLite
and PostgreSQL."""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from tests.api_errors import assert_error, field_names
from tests.conftest import TenantCtx
from tests.fixtures.delivery import deliveries, wait_deliveries, wait_final, wait_until
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import LiveServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """Two attempts per cycle (deliveries die within a fraction of a second); recovery in
    batches of 3, so that a job of a few entries runs several batches."""
    with running_server(
        tmp_path_factory, "replay", backend=backend, max_attempts=2, job_batch_size=3
    ) as srv:
        yield srv


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def bodies(receiver: Receiver, path: str) -> list[dict]:
    return [json.loads(r.body) for r in receiver.received(path)]


def wait_job(tenant: TenantCtx, job_id: str, timeout: float = 15.0) -> dict:
    def finished() -> dict | None:
        response = tenant.client.get(f"/api/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        return job if job["status"] in ("succeeded", "failed") else None

    return wait_until(finished, timeout=timeout, what=f"job {job_id} finished")


def kill_all(tenant: TenantCtx, event_ids: list[str]) -> None:
    for event_id in event_ids:
        assert tenant.publish("order.paid", event_id=event_id).status_code == 202
    for event_id in event_ids:
        assert wait_final(tenant.client, event_id)["status"] == "dead"


# -- test sends ------------------------------------------------------------------------------


def test_test_send_reaches_the_endpoint_alone_signed(tenant, receiver) -> None:
    receiver.plan("/replay/test")
    receiver.plan("/replay/test-other")
    endpoint = tenant.add_endpoint(receiver.url("/replay/test"), event_types=["invoice.paid"])
    tenant.add_endpoint(receiver.url("/replay/test-other"))  # every type: gets nothing

    url = f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}/test"
    response = tenant.client.post(url)
    assert response.status_code == 202, response.text
    delivery = response.json()
    assert delivery["event_type"] == "webhookd.test"
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["status"] == "pending"
    assert delivery["event_id"].startswith("test_")

    (request,) = receiver.wait_for(1, "/replay/test")
    Webhook(tenant.secret_key).verify(request.body, request.headers)
    assert request.header("webhook-id") == delivery["id"]
    body = json.loads(request.body)
    assert body["event_type"] == "webhookd.test"
    assert body["payload"]["endpoint_id"] == endpoint["id"]

    def succeeded() -> dict | None:
        found = tenant.client.get(f"/api/v1/deliveries/{delivery['id']}").json()
        return found if found["status"] == "succeeded" else None

    detail = wait_until(succeeded, what="test delivery succeeded")
    assert [a["response_status"] for a in detail["attempts"]] == [200]

    # With a payload of one's own.
    response = tenant.client.post(url, json={"payload": {"hello": "world"}})
    assert response.status_code == 202, response.text
    received = receiver.wait_for(2, "/replay/test")
    assert json.loads(received[1].body)["payload"] == {"hello": "world"}
    assert receiver.received("/replay/test-other") == []


def test_test_send_errors(tenant, other_tenant, receiver) -> None:
    receiver.plan("/replay/test-errors")
    endpoint = tenant.add_endpoint(receiver.url("/replay/test-errors"))
    url = f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}/test"

    error = assert_error(tenant.client.post(url, json={"payload": [1, 2]}), 422, "validation_error")
    assert "payload" in field_names(error)
    error = assert_error(tenant.client.post(url, json={"nope": 1}), 422, "validation_error")
    assert "nope" in field_names(error)
    missing = f"/api/v1/tenants/{tenant.id}/endpoints/ep_01JEKX6V4W8S8N0C7W0R6FQ2ZB/test"
    assert_error(tenant.client.post(missing), 404, "not_found")
    theirs = f"/api/v1/tenants/{other_tenant.id}/endpoints/{endpoint['id']}/test"
    assert_error(other_tenant.client.post(theirs), 404, "not_found")

    paused = tenant.client.patch(
        f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}", json={"is_active": False}
    )
    assert paused.status_code == 200, paused.text
    error = assert_error(tenant.client.post(url), 409, "endpoint_disabled")
    assert "enable" in error["message"]
    assert receiver.received("/replay/test-errors") == []


def test_get_delivery(tenant, other_tenant, receiver) -> None:
    receiver.plan("/replay/get")
    tenant.add_endpoint(receiver.url("/replay/get"))
    assert tenant.publish("user.created", event_id="evt_replay_get").status_code == 202
    delivery = wait_final(tenant.client, "evt_replay_get")

    found = tenant.client.get(f"/api/v1/deliveries/{delivery['id']}")
    assert found.status_code == 200, found.text
    assert found.json()["id"] == delivery["id"] and len(found.json()["attempts"]) == 1
    assert_error(other_tenant.client.get(f"/api/v1/deliveries/{delivery['id']}"), 404, "not_found")
    assert_error(tenant.client.get("/api/v1/deliveries/dlv_nope"), 404, "not_found")


# -- replay ------------------------------------------------------------------------------------


def test_replay_sends_finished_deliveries_again(tenant, receiver) -> None:
    receiver.plan("/replay/a")
    receiver.plan("/replay/b", default=500)
    a = tenant.add_endpoint(receiver.url("/replay/a"))
    b = tenant.add_endpoint(receiver.url("/replay/b"))
    assert tenant.publish("user.created", event_id="evt_replay_1").status_code == 202
    first = {d["endpoint_id"]: d for d in wait_deliveries(tenant.client, "evt_replay_1")}
    assert first[a["id"]]["status"] == "succeeded" and first[b["id"]]["status"] == "dead"
    (entry,) = [
        e for e in tenant.client.get("/api/v1/dlq").json()["items"] if e["endpoint_id"] == b["id"]
    ]

    receiver.plan("/replay/b")  # b works again
    response = tenant.client.post("/api/v1/events/evt_replay_1/replay")
    assert response.status_code == 202, response.text
    replayed = response.json()
    assert replayed["event_id"] == "evt_replay_1"
    assert {(d["endpoint_id"], d["outcome"]) for d in replayed["deliveries"]} == {
        (a["id"], "restarted"),
        (b["id"], "restarted"),
    }
    receiver.wait_for(2, "/replay/a")
    receiver.wait_for(3, "/replay/b")  # two failed attempts, then this one
    again = {d["endpoint_id"]: d for d in wait_deliveries(tenant.client, "evt_replay_1")}
    assert again[a["id"]]["status"] == "succeeded" and again[a["id"]]["cycle"] == 2
    assert again[b["id"]]["status"] == "succeeded" and again[b["id"]]["cycle"] == 2
    # The same delivery (its webhook-id), its earlier attempts kept.
    assert again[a["id"]]["id"] == first[a["id"]]["id"]
    assert [x["cycle"] for x in again[b["id"]]["attempts"]] == [1, 1, 2]
    resolved = tenant.client.get(f"/api/v1/dlq/{entry['id']}").json()
    assert resolved["resolved"] is True and resolved["resolution"] == "retried"


def test_replay_to_chosen_endpoints_and_new_ones(tenant, receiver) -> None:
    receiver.plan("/replay/old")
    receiver.plan("/replay/new")
    old = tenant.add_endpoint(receiver.url("/replay/old"))
    assert tenant.publish("user.created", event_id="evt_replay_2").status_code == 202
    wait_final(tenant.client, "evt_replay_2")
    new = tenant.add_endpoint(receiver.url("/replay/new"))

    response = tenant.client.post(
        "/api/v1/events/evt_replay_2/replay", json={"endpoint_ids": [new["id"]]}
    )
    assert response.status_code == 202, response.text
    (created,) = response.json()["deliveries"]
    assert created["endpoint_id"] == new["id"] and created["outcome"] == "created"
    receiver.wait_for(1, "/replay/new")
    assert len(receiver.received("/replay/old")) == 1  # not chosen: not sent again
    states = {d["endpoint_id"]: d["status"] for d in wait_deliveries(tenant.client, "evt_replay_2")}
    assert states == {old["id"]: "succeeded", new["id"]: "succeeded"}


def test_replay_leaves_a_live_delivery_alone(tenant, receiver) -> None:
    receiver.plan("/replay/live", default=503)
    endpoint = tenant.add_endpoint(receiver.url("/replay/live"), retry_schedule=[60])
    assert tenant.publish("user.created", event_id="evt_replay_live").status_code == 202
    wait_deliveries(
        tenant.client, "evt_replay_live", done=lambda ds: ds and ds[0]["status"] == "retrying"
    )
    response = tenant.client.post("/api/v1/events/evt_replay_live/replay")
    assert response.status_code == 202, response.text
    (live,) = response.json()["deliveries"]
    assert live["endpoint_id"] == endpoint["id"] and live["outcome"] == "in_progress"
    (delivery,) = deliveries(tenant.client, "evt_replay_live")
    assert delivery["status"] == "retrying" and delivery["cycle"] == 1


def test_replay_errors(tenant, other_tenant, receiver) -> None:
    receiver.plan("/replay/errors")
    tenant.add_endpoint(receiver.url("/replay/errors"))
    assert tenant.publish("user.created", event_id="evt_replay_err").status_code == 202
    wait_final(tenant.client, "evt_replay_err")
    url = "/api/v1/events/evt_replay_err/replay"

    assert_error(tenant.client.post("/api/v1/events/evt_never/replay"), 404, "not_found")
    assert_error(other_tenant.client.post(url), 404, "not_found")
    error = assert_error(
        tenant.client.post(url, json={"endpoint_ids": []}), 422, "validation_error"
    )
    assert "endpoint_ids" in field_names(error)
    assert_error(tenant.client.post(url, json={"endpoint_ids": "ep_x"}), 422, "validation_error")
    assert_error(tenant.client.post(url, json={"extra": True}), 422, "validation_error")
    theirs = other_tenant.add_endpoint(receiver.url("/replay/errors"))
    error = assert_error(
        tenant.client.post(url, json={"endpoint_ids": [theirs["id"]]}), 404, "not_found"
    )
    assert theirs["id"] in error["message"]
    assert len(receiver.received("/replay/errors")) == 1


# -- recovery jobs -----------------------------------------------------------------------------


def recover(tenant: TenantCtx, endpoint_id: str, **body: object) -> dict:
    response = tenant.client.post(
        f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint_id}/recover", json=body
    )
    assert response.status_code == 202, response.text
    return response.json()


def test_recover_resends_the_window_once(tenant, receiver) -> None:
    path = "/replay/recover"
    receiver.plan(path, default=500)
    endpoint = tenant.add_endpoint(receiver.url(path))
    before = now() - dt.timedelta(seconds=1)
    events = [f"evt_recover_{n}" for n in range(7)]
    kill_all(tenant, events)
    assert len(receiver.received(path)) == 14

    receiver.plan(path)  # the endpoint is back
    job = recover(tenant, endpoint["id"], since=iso(before))
    assert job["id"].startswith("job_") and job["kind"] == "recover"
    assert job["status"] in ("queued", "running", "succeeded")
    assert job["endpoint_id"] == endpoint["id"] and job["total"] == 7
    assert job["params"]["since"].startswith(before.isoformat()[:19])
    finished = wait_job(tenant, job["id"])
    assert finished["status"] == "succeeded", finished
    assert (finished["total"], finished["done"], finished["failed"]) == (7, 7, 0)
    assert finished["finished_at"] is not None and finished["error"] is None

    for event_id in events:
        delivery = wait_final(tenant.client, event_id)
        assert delivery["status"] == "succeeded" and delivery["cycle"] == 2
    receiver.wait_for(21, path)
    dlq = tenant.client.get("/api/v1/dlq", params={"endpoint_id": endpoint["id"]}).json()
    assert dlq["items"] == []

    # The same recovery again: nothing is left to send.
    again = recover(tenant, endpoint["id"], since=iso(before))
    assert again["total"] == 0
    assert wait_job(tenant, again["id"])["done"] == 0
    assert len(receiver.received(path)) == 21

    listed = tenant.client.get("/api/v1/jobs").json()["items"]
    assert [j["id"] for j in listed[:2]] == [again["id"], job["id"]]


def test_two_recoveries_at_once_send_each_delivery_once(tenant, receiver) -> None:
    path = "/replay/recover-twice"
    receiver.plan(path, default=500)
    endpoint = tenant.add_endpoint(receiver.url(path))
    before = now() - dt.timedelta(seconds=1)
    events = [f"evt_twice_{n}" for n in range(10)]
    kill_all(tenant, events)

    receiver.plan(path)
    jobs = [recover(tenant, endpoint["id"], since=iso(before)) for _ in range(2)]
    finished = [wait_job(tenant, job["id"]) for job in jobs]
    assert sum(job["done"] for job in finished) == 10
    for event_id in events:
        assert wait_final(tenant.client, event_id)["status"] == "succeeded"
    counts = collections.Counter(json.loads(r.body)["event_id"] for r in receiver.received(path))
    assert counts == {event_id: 3 for event_id in events}  # 2 failures, then one success


def test_recover_window_and_errors(tenant, other_tenant, receiver) -> None:
    path = "/replay/recover-window"
    receiver.plan(path, default=500)
    endpoint = tenant.add_endpoint(receiver.url(path))
    kill_all(tenant, ["evt_window_1"])
    receiver.plan(path)

    # A window that ends before the entry was made: nothing to do.
    job = recover(tenant, endpoint["id"], since="2020-01-01T00:00:00", until="2020-01-02T00:00:00")
    assert job["total"] == 0 and job["params"]["until"].startswith("2020-01-02T00:00:00+00:00")
    assert wait_job(tenant, job["id"])["status"] == "succeeded"
    assert wait_final(tenant.client, "evt_window_1")["status"] == "dead"

    url = f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint['id']}/recover"
    for body, field in (
        ({}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, None),
        ({"since": "2026-01-01T00:00:00Z", "extra": 1}, "extra"),
    ):
        error = assert_error(tenant.client.post(url, json=body), 422, "validation_error")
        if field:
            assert field in field_names(error), error
    assert_error(
        other_tenant.client.post(
            f"/api/v1/tenants/{other_tenant.id}/endpoints/{endpoint['id']}/recover",
            json={"since": "2026-01-01T00:00:00Z"},
        ),
        404,
        "not_found",
    )
    assert_error(other_tenant.client.get(f"/api/v1/jobs/{job['id']}"), 404, "not_found")
    assert_error(tenant.client.get("/api/v1/jobs/job_nope"), 404, "not_found")


def test_recovered_delivery_that_dies_again_notifies_once(admin, tenant, receiver) -> None:
    receiver.plan("/replay/notices")
    response = admin.patch(
        f"/api/v1/tenants/{tenant.id}",
        json={"operational_webhook_url": receiver.url("/replay/notices")},
    )
    assert response.status_code == 200, response.text
    receiver.plan("/replay/still-dead", default=500)
    endpoint = tenant.add_endpoint(receiver.url("/replay/still-dead"))
    before = now() - dt.timedelta(seconds=1)
    kill_all(tenant, ["evt_dies_again"])
    receiver.wait_for(1, "/replay/notices")

    job = recover(tenant, endpoint["id"], since=iso(before))
    assert wait_job(tenant, job["id"])["done"] == 1

    def dead_again() -> dict | None:
        (delivery,) = deliveries(tenant.client, "evt_dies_again")
        return delivery if delivery["status"] == "dead" and delivery["cycle"] == 2 else None

    wait_until(dead_again, what="the recovered delivery dead again")
    receiver.wait_for(2, "/replay/notices")
    notices = [
        n
        for n in bodies(receiver, "/replay/notices")
        if n["event_type"] == "delivery.dead_lettered"
    ]
    assert [n["payload"]["event_id"] for n in notices] == ["evt_dies_again", "evt_dies_again"]
    assert len(receiver.received("/replay/still-dead")) == 4
