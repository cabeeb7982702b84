"""Endpoint delivery policy for real (embedded engine, SQLite and PostgreSQL): an endpoint's
own retry schedule, Retry-After, 410 Gone, the circuit breaker, auto-disable, enable,
custom headers, and FIFO order. The rate limit is in test_endpoint_rate_limit.py and the
operational webhooks in test_operational_webhooks.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.delivery import wait_deliveries, wait_final, wait_until
from tests.fixtures.receiver import Received
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server

COOLDOWN, MAX_COOLDOWN, CAP = 1.0, 2.0, 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """The breaker opens after 3 failures for 1 s (then 2 s); Retry-After is capped at 1.5 s."""
    with running_server(
        tmp_path_factory,
        "policy",
        backend=backend,
        breaker_threshold=3,
        breaker_cooldown=COOLDOWN,
        breaker_max_cooldown=MAX_COOLDOWN,
        max_retry_after=CAP,
    ) as srv:
        yield srv


@pytest.fixture
def tenant(server: LiveServer) -> Iterator[TenantCtx]:
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        ctx = create_tenant(server, admin)
    yield ctx
    ctx.client.close()


def endpoint(tenant: TenantCtx, endpoint_id: str) -> dict:
    response = tenant.client.get(f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint_id}")
    assert response.status_code == 200, response.text
    return response.json()


def enable(tenant: TenantCtx, endpoint_id: str) -> dict:
    response = tenant.client.post(f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint_id}/enable")
    assert response.status_code == 200, response.text
    return response.json()


def circuit_open_hand_backs(tenant: TenantCtx) -> float:
    """webhook_deliveries_throttled{reason="circuit_open"}: deliveries claimed and handed
    back because their endpoint's circuit was open."""
    text = tenant.client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "webhook_deliveries_throttled_total"
        and sample.labels.get("reason") == "circuit_open"
    )


def gaps(requests: list[Received]) -> list[float]:
    return [b.at - a.at for a, b in zip(requests, requests[1:], strict=False)]


def test_an_endpoint_retry_schedule_replaces_the_default(tenant, receiver) -> None:
    receiver.plan("/p/schedule", default=500)
    tenant.add_endpoint(receiver.url("/p/schedule"), retry_schedule=[0.3, 0.6])
    assert tenant.publish(event_id="evt_schedule").status_code == 202
    delivery = wait_final(tenant.client, "evt_schedule")
    assert delivery["status"] == "dead" and delivery["attempt_count"] == 3
    measured = gaps(receiver.received("/p/schedule"))
    assert len(measured) == 2
    assert 0.28 <= measured[0] < 0.8 and 0.58 <= measured[1] < 1.1, measured


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [("1", 0.98, 1.45), ("3600", CAP - 0.02, CAP + 0.5)],  # seconds; capped
)
def test_retry_after_sets_the_next_attempt(tenant, receiver, header, low, high) -> None:
    path = f"/p/retry-after/{header}"
    receiver.plan(path, 429, default=200, headers={"Retry-After": header})
    tenant.add_endpoint(receiver.url(path), retry_schedule=[0.05])
    assert tenant.publish(event_id=f"evt_ra_{header}").status_code == 202
    assert wait_final(tenant.client, f"evt_ra_{header}")["status"] == "succeeded"
    (gap,) = gaps(receiver.received(path))
    assert low <= gap < high, gap


def test_retry_after_as_an_http_date(tenant, receiver) -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    receiver.plan("/p/retry-date", 503, default=200, headers={"Retry-After": when})
    tenant.add_endpoint(receiver.url("/p/retry-date"), retry_schedule=[0.05])
    assert tenant.publish(event_id="evt_ra_date").status_code == 202
    assert wait_final(tenant.client, "evt_ra_date")["status"] == "succeeded"
    (gap,) = gaps(receiver.received("/p/retry-date"))
    assert 0.9 <= gap <= CAP + 0.5, gap  # at least a second (HTTP dates have whole seconds)


def test_410_disables_the_endpoint_and_enable_sends_what_waited(tenant, receiver) -> None:
    receiver.plan("/p/gone", 410, default=200)
    created = tenant.add_endpoint(receiver.url("/p/gone"))
    assert tenant.publish(event_id="evt_gone_1").status_code == 202
    wait_until(lambda: endpoint(tenant, created["id"])["disabled_reason"] == "gone", 10, "gone")
    (first,) = wait_deliveries(
        tenant.client, "evt_gone_1", done=lambda ds: ds[0]["attempt_count"] == 1
    )
    assert first["status"] == "retrying" and first["next_attempt_at"] is None  # waiting
    assert tenant.publish(event_id="evt_gone_2").status_code == 202  # routed, kept waiting
    time.sleep(0.8)
    assert len(receiver.received("/p/gone")) == 1
    (second,) = wait_deliveries(tenant.client, "evt_gone_2", done=lambda ds: bool(ds))
    assert second["status"] == "pending" and second["attempt_count"] == 0
    assert not tenant.client.get("/api/v1/dlq").json()["items"]  # nothing dead-lettered

    enabled = enable(tenant, created["id"])
    assert enabled["disabled_reason"] is None and enabled["circuit"] == "closed"
    assert wait_final(tenant.client, "evt_gone_1")["status"] == "succeeded"
    assert wait_final(tenant.client, "evt_gone_2")["status"] == "succeeded"
    assert len(receiver.received("/p/gone")) == 3


def test_breaker_opens_probes_and_closes(tenant, receiver) -> None:
    receiver.plan("/p/breaker", default=500)
    created = tenant.add_endpoint(receiver.url("/p/breaker"), retry_schedule=[0.05] * 30)
    assert tenant.publish(event_id="evt_breaker").status_code == 202
    wait_until(lambda: endpoint(tenant, created["id"])["circuit"] == "open", 10, "open")
    opened = time.monotonic()
    assert len(receiver.received("/p/breaker")) == 3  # threshold: no more while open
    probe = receiver.wait_for(4, "/p/breaker", timeout=5)[3]
    assert probe.at - opened >= COOLDOWN - 0.3  # nothing during the cool-down
    # The probe failed: open again for twice as long.
    wait_until(lambda: endpoint(tenant, created["id"])["circuit"] == "open", 5, "reopened")
    second = receiver.wait_for(5, "/p/breaker", timeout=6)[4]
    assert second.at - probe.at >= MAX_COOLDOWN - 0.3
    receiver.plan("/p/breaker", default=200)
    receiver.wait_for(6, "/p/breaker", timeout=6)
    delivery = wait_final(tenant.client, "evt_breaker")
    assert delivery["status"] == "succeeded"
    state = endpoint(tenant, created["id"])
    assert state["circuit"] == "closed" and state["failing_since"] is None
    # The deliveries that waited behind the open circuit used no attempt.
    assert delivery["attempt_count"] == len(receiver.received("/p/breaker"))


def test_an_open_circuit_holds_other_deliveries_without_using_attempts(tenant, receiver) -> None:
    receiver.plan("/p/held", default=500)
    # Retries 2 s apart: none of the first events' retries is due (and handed back) while
    # the events published below are checked, 0.3 s after the circuit opened.
    created = tenant.add_endpoint(receiver.url("/p/held"), retry_schedule=[2.0] * 5)
    for n in range(3):
        assert tenant.publish(event_id=f"evt_held_{n}").status_code == 202
    wait_until(lambda: endpoint(tenant, created["id"])["circuit"] == "open", 10, "open")
    opened = time.monotonic()
    handed_back = circuit_open_hand_backs(tenant)
    for n in range(3, 6):
        assert tenant.publish(event_id=f"evt_held_{n}").status_code == 202
        (delivery,) = wait_deliveries(tenant.client, f"evt_held_{n}", done=bool)
        assert delivery["status"] == "pending" and delivery["next_attempt_at"] is None
    time.sleep(0.3)
    # Created waiting: no claim took them only to hand them back.
    assert circuit_open_hand_backs(tenant) == handed_back
    time.sleep(COOLDOWN / 2)
    # Published while open: none sent before the cool-down ended (then the oldest waiting
    # delivery, one of these, goes out as the probe).
    later = [f"evt_held_{n}".encode() for n in range(3, 6)]
    assert not [
        r
        for r in receiver.received("/p/held")
        if any(e in r.body for e in later) and r.at < opened + COOLDOWN - 0.3
    ]
    receiver.plan("/p/held", default=200)
    for n in range(6):
        assert wait_final(tenant.client, f"evt_held_{n}", timeout=15)["status"] == "succeeded"
    total_attempts = sum(
        wait_final(tenant.client, f"evt_held_{n}")["attempt_count"] for n in range(6)
    )
    assert total_attempts == len(receiver.received("/p/held"))  # each request one attempt


def test_an_endpoint_failing_for_auto_disable_after_is_disabled(
    tmp_path_factory: pytest.TempPathFactory, backend: str, receiver
) -> None:
    """With WEBHOOKD_AUTO_DISABLE_AFTER at 1 s, an endpoint that keeps failing is disabled
    ("failing") at its first failure 1 s after the first; nothing is sent to it while
    disabled, nothing is dead-lettered, and enable sends what waited."""
    with (
        running_server(
            tmp_path_factory,
            "autodisable",
            backend=backend,
            breaker_threshold=3,
            breaker_cooldown=0.4,
            breaker_max_cooldown=0.4,
            auto_disable_after=1.0,
        ) as srv,
        srv.client(**{"X-Admin-Key": ADMIN_KEY}) as admin,
    ):
        tenant = create_tenant(srv, admin)
        receiver.plan("/p/failing", default=500)
        created = tenant.add_endpoint(receiver.url("/p/failing"), retry_schedule=[0.05] * 50)
        assert tenant.publish(event_id="evt_failing").status_code == 202
        wait_until(
            lambda: endpoint(tenant, created["id"])["disabled_reason"] == "failing", 10, "failing"
        )
        state = endpoint(tenant, created["id"])
        assert state["failing_since"] is not None
        sent = len(receiver.received("/p/failing"))
        requests = receiver.received("/p/failing")
        assert requests[-1].at - requests[0].at >= 1.0 - 0.3  # failed for the whole second
        time.sleep(1.0)  # longer than the cool-down: the breaker does not probe a disabled one
        assert len(receiver.received("/p/failing")) == sent
        assert not tenant.client.get("/api/v1/dlq").json()["items"]
        receiver.plan("/p/failing", default=200)
        enabled = enable(tenant, created["id"])
        assert enabled["disabled_reason"] is None and enabled["failing_since"] is None
        delivery = wait_final(tenant.client, "evt_failing")
        assert delivery["status"] == "succeeded"
        assert delivery["attempt_count"] == sent + 1
        tenant.client.close()


def test_custom_headers_are_sent_before_webhookds_own(tenant, receiver) -> None:
    receiver.plan("/p/headers")
    tenant.add_endpoint(
        receiver.url("/p/headers"),
        headers={"X-Team": "payments", "Authorization": "Bearer s3cret"},
    )
    assert tenant.publish(event_id="evt_headers").status_code == 202
    (request,) = receiver.wait_for(1, "/p/headers")
    assert request.header("X-Team") == "payments"
    assert request.header("Authorization") == "Bearer s3cret"
    assert request.header("webhook-id") and request.header("webhook-signature")
    assert request.header("Content-Type") == "application/json"


def test_fifo_delivers_in_publish_order_one_at_a_time(tenant, receiver) -> None:
    """The receiver fails the first try of every third event: the next event waits."""
    tries: dict[int, int] = {}

    def answer(request: Received) -> int:
        n = json.loads(request.body)["payload"]["n"]
        tries[n] = tries.get(n, 0) + 1
        return 500 if n % 3 == 0 and tries[n] == 1 else 200

    receiver.plan_with("/p/fifo", answer)
    receiver.plan("/p/unordered")
    tenant.add_endpoint(receiver.url("/p/fifo"), ordering="fifo", retry_schedule=[0.1])
    tenant.add_endpoint(receiver.url("/p/unordered"))
    count = 30
    for n in range(count):
        assert tenant.publish(event_id=f"evt_fifo_{n}", n=n).status_code == 202
    receiver.wait_for(count, "/p/unordered", timeout=10)  # not held back by the FIFO one
    requests = receiver.wait_for(count + count // 3, "/p/fifo", timeout=30)
    seen = [json.loads(r.body)["payload"]["n"] for r in requests]
    # Each event is tried until it succeeds before the next is tried at all.
    expected = [n for n in range(count) for _ in range(2 if n % 3 == 0 else 1)]
    assert seen == expected
