"""Issue 13: statuses that say what is happening (`retrying` with `next_attempt_at`), and
the listings that answer "what is failing right now": an endpoint's deliveries and the
tenant's, filtered by status and time, newest first, keyset-paginated."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import httpx
import pytest

from tests.api_errors import assert_error
from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.delivery import wait_until
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    # A retry waits a minute: a failed delivery stays `retrying` while the test looks.
    with running_server(
        tmp_path_factory, backend=backend, retry_base_delay=60, retry_max_delay=60
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as client:
        yield client


def _deliveries(client: httpx.Client, path: str, **params) -> list[dict]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def _setup(server, admin, receiver) -> tuple[TenantCtx, dict, dict]:
    tenant = create_tenant(server, admin)
    ok = tenant.add_endpoint(receiver.url("/ok"))
    down = tenant.add_endpoint(receiver.url("/down"))
    receiver.plan("/down", default=500)
    for n in range(3):
        assert tenant.publish(event_id=f"evt_list_{n}").status_code == 202
    for status in ("retrying", "succeeded"):
        wait_until(
            lambda status=status: (
                len(_deliveries(tenant.client, "/api/v1/deliveries", status=status)) == 3
            ),
            what=f"three {status} deliveries",
        )
    return tenant, ok, down


def test_a_delivery_waiting_for_its_next_attempt_is_retrying(server, admin, receiver) -> None:
    tenant, ok, down = _setup(server, admin, receiver)
    retrying = _deliveries(tenant.client, "/api/v1/deliveries", status="retrying")
    assert {d["endpoint_id"] for d in retrying} == {down["id"]}
    for delivery in retrying:
        due = dt.datetime.fromisoformat(delivery["next_attempt_at"])
        assert due > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        assert delivery["attempt_count"] == 1 and "HTTP 500" in delivery["last_error"]
    succeeded = _deliveries(tenant.client, "/api/v1/deliveries", status="succeeded")
    assert {d["endpoint_id"] for d in succeeded} == {ok["id"]}
    assert all(d["next_attempt_at"] is None for d in succeeded)
    both = _deliveries(tenant.client, "/api/v1/deliveries", status=["retrying", "succeeded"])
    assert len(both) == 6
    # Newest first.
    assert [d["event_id"] for d in retrying] == ["evt_list_2", "evt_list_1", "evt_list_0"]


def test_an_endpoints_deliveries_by_status_and_time(server, admin, receiver) -> None:
    tenant, ok, down = _setup(server, admin, receiver)
    path = f"/api/v1/tenants/{tenant.id}/endpoints/{down['id']}/deliveries"
    for client in (tenant.client, admin):
        assert len(_deliveries(client, path)) == 3
        assert len(_deliveries(client, path, status="retrying")) == 3
        assert _deliveries(client, path, status="succeeded") == []
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).isoformat()
    assert _deliveries(tenant.client, path, since=future) == []
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    assert len(_deliveries(tenant.client, path, since=past)) == 3


def test_listings_are_keyset_paginated(server, admin, receiver) -> None:
    tenant, _, _ = _setup(server, admin, receiver)
    seen, cursor = [], None
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = tenant.client.get("/api/v1/deliveries", params=params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6


def test_listings_stay_within_the_tenant(server, admin, receiver) -> None:
    tenant, _, down = _setup(server, admin, receiver)
    other = create_tenant(server, admin)
    path = f"/api/v1/tenants/{tenant.id}/endpoints/{down['id']}/deliveries"
    assert_error(other.client.get(path), 404, "not_found")
    own_path = f"/api/v1/tenants/{other.id}/endpoints/{down['id']}/deliveries"
    assert_error(other.client.get(own_path), 404, "not_found")
    assert _deliveries(other.client, "/api/v1/deliveries") == []


def test_the_status_enum_is_documented(server) -> None:
    with server.client() as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["DeliveryStatus"]
    assert schema["enum"] == ["pending", "delivering", "succeeded", "retrying", "dead"]
    for value in schema["enum"]:
        assert f"`{value}`" in schema["description"]
