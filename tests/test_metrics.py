"""GET /metrics: the brief's metric names, values that move with real traffic, the DLQ gauge
after a restart; /health and /ready.

Prometheus metrics are process-global, so values are compared before/after and labels are
scoped by a fresh tenant per test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.db import run_sql
from tests.fixtures.delivery import wait_final
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server
from webhookd import metrics as webhookd_metrics


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """Two attempts per cycle, so dead letters appear within a fraction of a second."""
    with running_server(tmp_path_factory, "metrics", backend=backend, max_attempts=2) as srv:
        yield srv


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
        return sum(
            s.value
            for f in self.families.values()
            for s in f.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def samples(self, name: str) -> list:
        return [s for f in self.families.values() for s in f.samples if s.name == name]


def scrape(base: LiveServer | httpx.Client) -> Scrape:
    client = base if isinstance(base, httpx.Client) else base.client()
    try:
        response = client.get("/metrics")
    finally:
        if client is not base:
            client.close()
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def unresolved_in_db(server: LiveServer) -> int:
    rows = run_sql(server.settings, "SELECT count(*) FROM dead_letters WHERE NOT resolved")
    return int(rows[0][0])


def kill(tenant: TenantCtx, event_id: str, event_type: str = "user.created") -> dict:
    assert tenant.publish(event_type, event_id=event_id).status_code == 202
    delivery = wait_final(tenant.client, event_id)
    assert delivery["status"] == "dead", delivery
    return delivery


def add_event_types(tenant: TenantCtx, *names: str) -> None:
    """Put ``names`` in the tenant's event-type catalog."""
    for name in names:
        created = tenant.client.post(
            f"/api/v1/tenants/{tenant.id}/event-types", json={"name": name}
        )
        assert created.status_code == 201, created.text


def dlq_entry(tenant: TenantCtx, event_id: str) -> dict:
    (entry,) = [
        e for e in tenant.client.get("/api/v1/dlq").json()["items"] if e["event_id"] == event_id
    ]
    return entry


def test_health_and_ready(server) -> None:
    with server.client() as client:
        health = client.get("/health")
        ready = client.get("/ready")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["database"] == "ok"  # the rest: tests/test_ready.py


def test_exposes_the_brief_metric_names(server, admin, tenant, receiver) -> None:
    receiver.plan("/metrics/names-fail", default=500)
    tenant.add_endpoint(receiver.url("/metrics/names-ok"), event_types=["user.created"])
    tenant.add_endpoint(receiver.url("/metrics/names-fail"), event_types=["order.failed"])
    wait_final(tenant.client, tenant.publish("user.created").json()["event_id"])
    wait_final(tenant.client, tenant.publish("order.failed").json()["event_id"])
    limited = create_tenant(server, admin, rate_limit=1)
    try:
        assert limited.publish().status_code == 202
        assert limited.publish().status_code == 429
    finally:
        limited.client.close()

    found = scrape(server)
    expected_types = {
        "webhook_events_published": "counter",
        "webhook_delivery_success": "counter",
        "webhook_delivery_failure": "counter",
        "webhook_delivery_duration_seconds": "histogram",
        "webhook_dlq_size": "gauge",
        "webhook_rate_limit_hits": "counter",
    }
    for name, kind in expected_types.items():
        assert name in found.families, name
        assert found.families[name].type == kind, name

    def label_names(sample_name: str) -> set[frozenset[str]]:
        samples = found.samples(sample_name)
        assert samples, sample_name
        return {frozenset(s.labels) for s in samples}

    assert label_names("webhook_events_published_total") == {frozenset({"tenant", "event_type"})}
    assert frozenset({"tenant"}) <= set().union(*label_names("webhook_delivery_success_total"))
    assert all("tenant" in labels for labels in label_names("webhook_delivery_failure_total"))
    assert label_names("webhook_rate_limit_hits_total") == {frozenset({"tenant"})}
    assert label_names("webhook_dlq_size") == {frozenset()}
    for suffix in ("_bucket", "_sum", "_count"):
        assert found.samples("webhook_delivery_duration_seconds" + suffix), suffix
    assert all("le" in s.labels for s in found.samples("webhook_delivery_duration_seconds_bucket"))


def test_publish_and_delivery_counters_move(tenant, receiver, server) -> None:
    t = str(tenant.id)
    add_event_types(tenant, "user.created", "order.completed")  # labelled by name
    receiver.plan("/metrics/flaky", 500, default=200)
    tenant.add_endpoint(receiver.url("/metrics/ok"), event_types=["user.created"])
    tenant.add_endpoint(receiver.url("/metrics/flaky"), event_types=["order.completed"])
    before = scrape(server)

    assert tenant.publish("user.created", event_id="evt_m_1").status_code == 202
    assert tenant.publish("user.created", event_id="evt_m_2").status_code == 202
    assert tenant.publish("user.created", event_id="evt_m_1").status_code == 200  # duplicate
    assert tenant.publish("order.completed", event_id="evt_m_3").status_code == 202
    for event_id in ("evt_m_1", "evt_m_2", "evt_m_3"):
        assert wait_final(tenant.client, event_id)["status"] == "succeeded"
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    published = "webhook_events_published_total"
    assert delta(published, tenant=t, event_type="user.created") == 2
    assert delta(published, tenant=t, event_type="order.completed") == 1
    assert delta(published, tenant=t) == 3
    assert delta("webhook_delivery_success_total", tenant=t) == 3
    assert delta("webhook_delivery_failure_total", tenant=t) == 1
    assert delta("webhook_delivery_failure_total", tenant=t, reason="http_status") == 1
    assert delta("webhook_delivery_duration_seconds_count", tenant=t) == 4
    assert delta("webhook_delivery_duration_seconds_sum", tenant=t) > 0
    assert delta("webhook_delivery_duration_seconds_bucket", tenant=t, le="+Inf") == 4
    buckets = sorted(
        (float(s.labels["le"]), s.value)
        for s in after.samples("webhook_delivery_duration_seconds_bucket")
        if s.labels["tenant"] == t
    )
    counts = [count for _, count in buckets]
    assert counts == sorted(counts)  # cumulative
    assert delta("webhook_rate_limit_hits_total", tenant=t) == 0


def test_uncatalogued_event_types_count_as_other(server, tenant) -> None:
    """A publisher inventing types cannot grow /metrics: only catalog types keep their name."""
    t = str(tenant.id)
    add_event_types(tenant, "metrics.catalogued")
    invented = [f"invented.{uuid.uuid4().hex[:12]}" for _ in range(50)]
    before = scrape(server)
    for name in invented:
        assert tenant.publish(name).status_code == 202
    assert tenant.publish("metrics.catalogued").status_code == 202
    assert tenant.publish("metrics.catalogued").status_code == 202
    after = scrape(server)

    published = "webhook_events_published_total"
    labels = {s.labels["event_type"] for s in after.samples(published)}
    assert not labels & set(invented)
    assert "other" in labels
    for event_type, count in (("other", 50), ("metrics.catalogued", 2)):
        moved = after.value(published, tenant=t, event_type=event_type)
        assert moved - before.value(published, tenant=t, event_type=event_type) == count
    assert after.value(published, tenant=t) - before.value(published, tenant=t) == 52


def test_types_of_the_deployment_catalog_keep_their_name(server, tenant) -> None:
    """The deployment's catalog (the Svix API's event types) names labels too; a process
    reads it again within WEBHOOKD_EVENT_TYPE_CACHE_SECONDS (5 s here)."""
    name = f"deployment.{uuid.uuid4().hex[:8]}"
    with server.client(Authorization=f"Bearer {ADMIN_KEY}") as operator:
        created = operator.post("/api/v1/event-type", json={"name": name, "description": "d"})
    assert created.status_code == 201, created.text
    t, published = str(tenant.id), "webhook_events_published_total"
    sent = 0
    deadline = time.monotonic() + 15
    while scrape(server).value(published, tenant=t, event_type=name) == 0:
        assert time.monotonic() < deadline, "the deployment's type never got its own series"
        assert tenant.publish(name).status_code == 202
        sent += 1
        time.sleep(0.2)
    found = scrape(server)
    assert found.value(published, tenant=t) == sent
    assert found.value(published, tenant=t, event_type=name) >= 1


def test_catalog_types_beyond_the_budget_count_as_other(server, tenant) -> None:
    """At most WEBHOOKD_METRICS_MAX_EVENT_TYPES (50) catalog types get series of their own,
    however many a tenant puts in its catalog."""
    t, published = str(tenant.id), "webhook_events_published_total"
    names = [f"budget.type{n}" for n in range(60)]
    add_event_types(tenant, *names)
    for name in names:
        assert tenant.publish(name).status_code == 202
    found = scrape(server)
    named = {
        s.labels["event_type"]
        for s in found.samples(published)
        if s.labels["tenant"] == t and s.labels["event_type"] != "other"
    }
    assert named <= set(names)
    assert len(named) <= 50
    assert found.value(published, tenant=t, event_type="other") == 60 - len(named) >= 10
    assert found.value(published, tenant=t) == 60


def test_rate_limit_hits(server, admin) -> None:
    limited = create_tenant(server, admin, rate_limit=2)
    try:
        t = str(limited.id)
        before = scrape(server)
        statuses = [limited.publish(event_id=f"evt_rl_{n}").status_code for n in range(4)]
        after = scrape(server)
    finally:
        limited.client.close()
    assert statuses == [202, 202, 429, 429]
    hits = "webhook_rate_limit_hits_total"
    assert after.value(hits, tenant=t) - before.value(hits, tenant=t) == 2
    published = "webhook_events_published_total"
    assert after.value(published, tenant=t) - before.value(published, tenant=t) == 2


def test_dlq_size_follows_the_queue(server, tenant, receiver) -> None:
    receiver.plan("/metrics/dlq", default=500)
    tenant.add_endpoint(receiver.url("/metrics/dlq"))

    def gauge() -> float:
        return scrape(server).value("webhook_dlq_size")

    start = gauge()
    assert start == unresolved_in_db(server)
    kill(tenant, "evt_g_1")
    kill(tenant, "evt_g_2")
    kill(tenant, "evt_g_3")
    assert gauge() == start + 3 == unresolved_in_db(server)

    receiver.plan("/metrics/dlq", default=200)
    retried = tenant.client.post(f"/api/v1/dlq/{dlq_entry(tenant, 'evt_g_1')['id']}/retry")
    assert retried.status_code == 200, retried.text
    assert gauge() == start + 2 == unresolved_in_db(server)
    assert wait_final(tenant.client, "evt_g_1")["status"] == "succeeded"
    assert gauge() == start + 2

    entry = dlq_entry(tenant, "evt_g_2")
    assert tenant.client.delete(f"/api/v1/dlq/{entry['id']}").status_code == 200
    assert gauge() == start + 1 == unresolved_in_db(server)
    assert tenant.client.delete(f"/api/v1/dlq/{entry['id']}").status_code == 200  # no double count
    assert tenant.client.post(f"/api/v1/dlq/{entry['id']}/retry").status_code == 409
    assert gauge() == start + 1 == unresolved_in_db(server)

    bulk = tenant.client.post("/api/v1/dlq/retry")
    assert bulk.json()["retried"] == 1
    assert gauge() == start == unresolved_in_db(server)
    assert wait_final(tenant.client, "evt_g_3")["status"] == "succeeded"


# Keep last: it stops the module's server.
def test_dlq_size_is_recomputed_after_restart(server, tenant, receiver) -> None:
    receiver.plan("/metrics/restart", default=500)
    tenant.add_endpoint(receiver.url("/metrics/restart"))
    kill(tenant, "evt_r_1")
    kill(tenant, "evt_r_2")
    unresolved = unresolved_in_db(server)
    assert unresolved >= 2
    assert scrape(server).value("webhook_dlq_size") == unresolved
    sent = len(receiver.received("/metrics/restart"))

    server.stop()
    webhookd_metrics.DLQ_SIZE.set(0)
    restarted = LiveServer(server.settings).start()
    try:
        assert restarted.port != server.port
        found = scrape(restarted)
        assert found.value("webhook_dlq_size") == unresolved
        with restarted.client(**{"X-API-Key": tenant.api_key}) as client:
            assert {e["event_id"] for e in client.get("/api/v1/dlq").json()["items"]} >= {
                "evt_r_1",
                "evt_r_2",
            }
        time.sleep(0.5)  # dead deliveries stay dead across the restart
        assert len(receiver.received("/metrics/restart")) == sent
        assert unresolved_in_db(restarted) == unresolved
    finally:
        restarted.stop()
