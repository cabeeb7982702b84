"""Deliveries leased at publish (embedded engine, SQLite and PostgreSQL): while nothing else
is due, a publish leases its new deliveries to the engine of its own process in its own
transaction and they go out as soon as it commits, with no claim transaction. What a claim
must gate (FIFO order, a rate limit) still goes through a claim, and so does what is
published to an endpoint whose circuit is open (test_endpoint_policy.py: created waiting);
counted by ``webhook_deliveries_leased_total{via}``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.fixtures.delivery import wait_deliveries, wait_final
from tests.fixtures.receiver import Received
from tests.fixtures.server import LiveServer, running_server
from tests.test_metrics import scrape

LEASED = "webhook_deliveries_leased_total"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """No poll while the tests run: its claim (once a second) would take a publish that
    falls within ``CLAIM_SPACING`` of it, and the counts below would depend on timing."""
    with running_server(tmp_path_factory, "lease", backend=backend, poll_interval=60) as srv:
        yield srv


def payload(request: Received) -> dict:
    return dict(json.loads(request.body)["payload"])


def leased(server) -> tuple[float, float]:
    """(via publish, via claim) so far."""
    now = scrape(server)
    return now.value(LEASED, via="publish"), now.value(LEASED, via="claim")


def test_one_at_a_time_every_delivery_is_leased_at_publish(server, tenant, receiver) -> None:
    receiver.plan("/lap/one")
    tenant.add_endpoint(receiver.url("/lap/one"))
    publish_before, claim_before = leased(server)
    for n in range(10):
        response = tenant.publish(event_id=f"evt_lap_one_{n}", n=n)
        assert response.status_code == 202, response.text
        assert wait_final(tenant.client, f"evt_lap_one_{n}")["status"] == "succeeded"
    arrived = receiver.wait_for(10, "/lap/one", timeout=10)
    assert sorted(payload(r)["n"] for r in arrived) == list(range(10))
    assert {r.header("X-Webhook-Attempt") for r in arrived} == {"1"}
    publish_after, claim_after = leased(server)
    assert publish_after - publish_before == 10
    assert claim_after == claim_before


def test_a_fan_out_is_leased_at_publish_and_signed(server, tenant, receiver) -> None:
    paths = [f"/lap/fan/{n}" for n in range(3)]
    for path in paths:
        receiver.plan(path)
        tenant.add_endpoint(receiver.url(path))
    publish_before, _ = leased(server)
    response = tenant.publish(event_id="evt_lap_fan")
    assert response.status_code == 202, response.text
    done = wait_deliveries(tenant.client, "evt_lap_fan")
    assert [d["status"] for d in done] == ["succeeded"] * 3
    for path in paths:
        (request,) = receiver.wait_for(1, path, timeout=10)
        assert request.header("webhook-signature").startswith("v1,")
    assert leased(server)[0] - publish_before == 3


def test_fifo_and_rate_limited_endpoints_still_go_through_a_claim(server, tenant, receiver) -> None:
    receiver.plan("/lap/fifo")
    receiver.plan("/lap/limited")
    tenant.add_endpoint(receiver.url("/lap/fifo"), ordering="fifo")
    tenant.add_endpoint(receiver.url("/lap/limited"), rate_limit=50.0)
    publish_before, claim_before = leased(server)
    for n in range(5):
        response = tenant.publish(event_id=f"evt_lap_gated_{n}", n=n)
        assert response.status_code == 202, response.text
    for n in range(5):
        done = wait_deliveries(tenant.client, f"evt_lap_gated_{n}")
        assert [d["status"] for d in done] == ["succeeded"] * 2
    fifo = receiver.wait_for(5, "/lap/fifo", timeout=10)
    assert [payload(r)["n"] for r in fifo] == list(range(5))  # in order
    receiver.wait_for(5, "/lap/limited", timeout=10)
    publish_after, claim_after = leased(server)
    assert publish_after == publish_before
    assert claim_after - claim_before == 10
