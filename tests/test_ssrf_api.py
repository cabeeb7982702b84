"""The SSRF guard through the API: private targets refused at creation and at delivery time.

Only loopback traffic ever leaves these tests: the private-range URLs are refused before any
connection, and the delivery-time check is aimed at the receiver on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.db import insert_row, row_id
from tests.fixtures.delivery import wait_deliveries
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server
from webhookd.ids import Kind, format_id
from webhookd.models import Endpoint, Tenant

PRIVATE_URLS = [
    "http://127.0.0.1/",
    "http://localhost:8080/",
    "http://[::1]/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data",
    "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory, "ssrf", allow_private_targets=False, max_attempts=2
    ) as srv:
        yield srv


def endpoint_urls(tenant: TenantCtx) -> list[str]:
    response = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints")
    assert response.status_code == 200, response.text
    return [e["url"] for e in response.json()["items"]]


def assert_refused_url(response) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [f["field"] for f in error["fields"]] == ["url"]
    assert "private networks" in error["fields"][0]["message"]


def test_server_refuses_private_targets(server) -> None:
    assert server.settings.allow_private_targets is False


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_url_refused_at_creation(tenant, url) -> None:
    response = tenant.client.post(f"/api/v1/tenants/{tenant.id}/endpoints", json={"url": url})
    assert_refused_url(response)
    assert endpoint_urls(tenant) == []


def insert_endpoint(server: LiveServer, tenant_id: str, url: str) -> str:
    """Store an endpoint row directly, as if its URL had been public when it was created."""
    tenant_row = row_id(server.settings, Tenant, tenant_id)
    _, public_id = insert_row(
        server.settings, Endpoint, tenant_id=tenant_row, url=url, event_types=[], is_active=True
    )
    return format_id(Kind.ENDPOINT, public_id)


def test_private_url_refused_on_update(server, tenant, receiver) -> None:
    stored = insert_endpoint(server, tenant.id, receiver.url("/ssrf/patch"))
    response = tenant.client.patch(
        f"/api/v1/tenants/{tenant.id}/endpoints/{stored}",
        json={"url": "http://169.254.169.254/latest/meta-data"},
    )
    assert_refused_url(response)
    assert endpoint_urls(tenant) == [receiver.url("/ssrf/patch")]


def test_private_target_refused_at_delivery_time(server, tenant, receiver) -> None:
    literal = insert_endpoint(server, tenant.id, receiver.url("/ssrf/literal"))
    named = insert_endpoint(
        server, tenant.id, f"http://localhost:{receiver.port}/ssrf/name"
    )  # caught by the resolver rather than by the literal check
    assert set(endpoint_urls(tenant)) == {
        receiver.url("/ssrf/literal"),
        f"http://localhost:{receiver.port}/ssrf/name",
    }

    response = tenant.publish("user.created", event_id="evt_ssrf")
    assert response.status_code == 202, response.text
    assert {d["endpoint_id"] for d in response.json()["deliveries"]} == {literal, named}

    final = wait_deliveries(tenant.client, "evt_ssrf")
    assert len(final) == 2
    for delivery in final:
        assert delivery["status"] == "dead"
        assert len(delivery["attempts"]) == 2
        for attempt in delivery["attempts"]:
            assert attempt["succeeded"] is False
            assert attempt["error_kind"] == "refused_target"
            assert attempt["response_status"] is None
            assert "loopback" in attempt["error_message"]
            expected = {literal: "host '127.0.0.1' is a", named: "'localhost' resolves to"}
            assert expected[delivery["endpoint_id"]] in attempt["error_message"]
    time.sleep(0.3)
    assert receiver.received("/ssrf/literal") == []
    assert receiver.received("/ssrf/name") == []
    dlq = tenant.client.get("/api/v1/dlq").json()["items"]
    assert {e["endpoint_id"] for e in dlq} == {literal, named}


@pytest.fixture(scope="module")
def allowlisted(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """The guard on, with the operator allow-list opening 127.0.0.0/8 on purpose."""
    settings = {"allow_private_targets": False, "allowed_networks": "127.0.0.0/8"}
    with running_server(tmp_path_factory, "allowlist", backend=backend, **settings) as srv:
        yield srv


def test_operator_allow_list_lets_a_private_network_through(allowlisted, receiver) -> None:
    admin = allowlisted.client(**{"X-Admin-Key": ADMIN_KEY})
    tenant = create_tenant(allowlisted, admin)
    try:
        tenant.add_endpoint(receiver.url("/ssrf/allowed"))
        for refused in ("http://10.0.0.1/", "http://169.254.169.254/", "http://[::1]/"):
            response = tenant.client.post(
                f"/api/v1/tenants/{tenant.id}/endpoints", json={"url": refused}
            )
            assert_refused_url(response)
        assert tenant.publish("user.created", event_id="evt_allowed").status_code == 202
        (request,) = receiver.wait_for(1, "/ssrf/allowed")
        assert request.header("X-Webhook-Event-Type") == "user.created"
    finally:
        tenant.client.close()
        admin.close()
