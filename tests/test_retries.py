"""Retries for real: the backoff schedule, dead-lettering, and how each failure is recorded."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.delivery import wait_final
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server
from webhookd.delivery.policy import EndpointPolicy

BASE, MAX, ATTEMPTS = 0.05, 0.4, 7
SCHEDULE = [0.05, 0.1, 0.2, 0.4, 0.4, 0.4]  # base * 2**(n-1), capped at MAX
EARLY = 0.02  # timer and clock slack: a gap may look this much shorter than scheduled
LATE = 0.5  # a gap may be this much longer (poll, recording, a loaded machine)


def gaps(requests) -> list[float]:
    return [b.at - a.at for a, b in zip(requests, requests[1:], strict=False)]


@pytest.fixture(scope="module")
def short_server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    """One attempt only and a 0.5 s request timeout."""
    with running_server(
        tmp_path_factory, "short", backend=backend, request_timeout=0.5, max_attempts=1
    ) as srv:
        yield srv


@pytest.fixture
def short_tenant(short_server: LiveServer) -> Iterator[TenantCtx]:
    with short_server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        ctx = create_tenant(short_server, admin)
    yield ctx
    ctx.client.close()


def test_settings_are_the_fast_schedule(server) -> None:
    settings = server.settings
    assert (settings.retry_base_delay, settings.retry_max_delay) == (BASE, MAX)
    assert EndpointPolicy.from_settings(settings).max_attempts == ATTEMPTS


def test_backoff_schedule_then_success(tenant, receiver) -> None:
    receiver.plan("/retry/schedule", *[500] * 6, default=200)
    tenant.add_endpoint(receiver.url("/retry/schedule"))
    assert tenant.publish("user.created", event_id="evt_schedule").status_code == 202

    requests = receiver.wait_for(7, "/retry/schedule", timeout=15)
    delivery = wait_final(tenant.client, "evt_schedule")
    assert delivery["status"] == "succeeded"
    assert delivery["attempt_count"] == 7
    assert delivery["cycle"] == 1
    assert delivery["delivered_at"] is not None
    assert delivery["next_attempt_at"] is None
    assert len(receiver.received("/retry/schedule")) == 7

    measured = gaps(requests)
    assert len(measured) == len(SCHEDULE)
    for n, (gap, scheduled) in enumerate(zip(measured, SCHEDULE, strict=True), start=1):
        assert gap >= scheduled - EARLY, f"retry {n} came after {gap:.3f}s < {scheduled}s"
        assert gap < scheduled + LATE, f"retry {n} came after {gap:.3f}s >> {scheduled}s"
    assert [r.header("X-Webhook-Attempt") for r in requests] == [str(n) for n in range(1, 8)]

    attempts = delivery["attempts"]
    assert [a["attempt_number"] for a in attempts] == list(range(1, 8))
    assert {a["cycle"] for a in attempts} == {1}
    assert [a["succeeded"] for a in attempts] == [False] * 6 + [True]
    assert [a["response_status"] for a in attempts] == [500] * 6 + [200]
    assert [a["error_kind"] for a in attempts] == ["http_status"] * 6 + [None]
    assert all(a["duration_ms"] >= 0 for a in attempts)


def test_always_failing_is_dead_after_seven_attempts(tenant, receiver) -> None:
    receiver.plan("/retry/dead", default=500, body=b"still broken")
    endpoint = tenant.add_endpoint(receiver.url("/retry/dead"))
    response = tenant.publish("order.failed", event_id="evt_dead")
    assert response.status_code == 202, response.text
    delivery_id = response.json()["deliveries"][0]["id"]

    delivery = wait_final(tenant.client, "evt_dead", timeout=15)
    assert delivery["status"] == "dead"
    assert delivery["attempt_count"] == 7
    assert delivery["next_attempt_at"] is None
    assert delivery["last_status_code"] == 500
    assert [a["attempt_number"] for a in delivery["attempts"]] == list(range(1, 8))
    assert not any(a["succeeded"] for a in delivery["attempts"])
    assert len(receiver.received("/retry/dead")) == 7

    dlq = tenant.client.get("/api/v1/dlq")
    assert dlq.status_code == 200, dlq.text
    (entry,) = dlq.json()["items"]
    assert entry["delivery_id"] == delivery_id
    assert entry["endpoint_id"] == endpoint["id"]
    assert entry["event_id"] == "evt_dead"
    assert entry["event_type"] == "order.failed"
    assert entry["attempts"] == 7
    assert entry["resolved"] is False
    assert "500" in entry["last_error"]


def test_http_500_is_recorded_with_status_and_body(tenant, receiver) -> None:
    receiver.plan("/retry/500", 500, default=200, body=b'{"error":"database on fire"}')
    tenant.add_endpoint(receiver.url("/retry/500"))
    assert tenant.publish(event_id="evt_500").status_code == 202

    delivery = wait_final(tenant.client, "evt_500")
    assert delivery["status"] == "succeeded"
    first, second = delivery["attempts"]
    assert first["succeeded"] is False
    assert first["error_kind"] == "http_status"
    assert first["response_status"] == 500
    assert first["response_body"] == '{"error":"database on fire"}'
    assert "500" in first["error_message"]
    assert second["succeeded"] is True
    assert second["error_kind"] is None
    assert second["response_status"] == 200


def test_redirect_is_not_followed(tenant, receiver) -> None:
    target = receiver.url("/retry/redirect-target")
    receiver.plan("/retry/redirect", 302, default=200, headers={"Location": target})
    tenant.add_endpoint(receiver.url("/retry/redirect"))
    assert tenant.publish(event_id="evt_redirect").status_code == 202

    delivery = wait_final(tenant.client, "evt_redirect")
    assert delivery["status"] == "succeeded"
    first, second = delivery["attempts"]
    assert first["succeeded"] is False
    assert first["error_kind"] == "http_status"
    assert first["response_status"] == 302
    assert second["succeeded"] is True
    assert len(receiver.received("/retry/redirect")) == 2
    assert receiver.received("/retry/redirect-target") == []


def test_body_larger_than_4kb_is_truncated(tenant, receiver) -> None:
    big = b"".join(b"%05d|" % i for i in range(4000))  # 24,000 bytes, each prefix distinct
    receiver.plan("/retry/big", 500, default=200, body=big)
    tenant.add_endpoint(receiver.url("/retry/big"))
    assert tenant.publish(event_id="evt_big").status_code == 202

    delivery = wait_final(tenant.client, "evt_big")
    stored = delivery["attempts"][0]["response_body"]
    assert len(stored.encode()) <= 4096
    assert stored == big[:4096].decode()
    assert delivery["attempts"][1]["response_body"] == big[:4096].decode()


def test_retry_after_on_429_is_honoured_but_capped(tenant, receiver) -> None:
    # Retry-After 2 s is longer than the 0.05 s backoff (so it must lengthen the wait) and
    # longer than the 0.4 s max delay (so it must be cut to 0.4 s).
    receiver.plan("/retry/429", 429, default=200, headers={"Retry-After": "2"})
    tenant.add_endpoint(receiver.url("/retry/429"))
    assert tenant.publish(event_id="evt_429").status_code == 202

    first, second = receiver.wait_for(2, "/retry/429")
    delivery = wait_final(tenant.client, "evt_429")
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"][0]["response_status"] == 429
    assert delivery["attempts"][0]["error_kind"] == "http_status"
    gap = second.at - first.at
    assert gap >= MAX - EARLY, f"Retry-After ignored: retried after {gap:.3f}s"
    assert gap < 1.0, f"Retry-After not capped at {MAX}s: retried after {gap:.3f}s"


@pytest.mark.parametrize("status", [201, 202, 204])
def test_any_2xx_is_success(tenant, receiver, status) -> None:
    path = f"/retry/ok-{status}"
    receiver.plan(path, default=status, body=b"" if status == 204 else b"created")
    tenant.add_endpoint(receiver.url(path))
    assert tenant.publish(event_id=f"evt_2xx_{status}").status_code == 202

    delivery = wait_final(tenant.client, f"evt_2xx_{status}")
    assert delivery["status"] == "succeeded"
    (attempt,) = delivery["attempts"]
    assert attempt["succeeded"] is True
    assert attempt["response_status"] == status
    assert attempt["error_kind"] is None
    assert len(receiver.received(path)) == 1


def test_slow_receiver_times_out(short_server, short_tenant, receiver) -> None:
    assert short_server.settings.request_timeout == 0.5
    receiver.plan("/retry/slow", default=200, delay=1.5)
    short_tenant.add_endpoint(receiver.url("/retry/slow"))
    assert short_tenant.publish(event_id="evt_slow").status_code == 202

    delivery = wait_final(short_tenant.client, "evt_slow")
    assert delivery["status"] == "dead"
    (attempt,) = delivery["attempts"]
    assert attempt["succeeded"] is False
    assert attempt["error_kind"] == "timeout"
    assert attempt["response_status"] is None
    assert 400 <= attempt["duration_ms"] < 1400
    assert len(receiver.received("/retry/slow")) == 1


def test_closed_port_is_a_connection_error(short_tenant) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    short_tenant.add_endpoint(f"http://127.0.0.1:{port}/hook")
    assert short_tenant.publish(event_id="evt_closed").status_code == 202

    delivery = wait_final(short_tenant.client, "evt_closed")
    assert delivery["status"] == "dead"
    (attempt,) = delivery["attempts"]
    assert attempt["succeeded"] is False
    assert attempt["error_kind"] == "connection"
    assert attempt["response_status"] is None
    assert attempt["error_message"]


@pytest.mark.parametrize(
    ("name", "big", "expected"),
    [
        # A two-byte character straddles byte 4096: only whole characters may be kept.
        ("straddle", b"a" * 4095 + "é".encode() * 100, "a" * 4095),
        # Not UTF-8 at all: each bad byte decodes to U+FFFD, three bytes in UTF-8.
        ("binary", b"\xff" * 5000, None),
    ],
)
def test_truncated_body_stays_within_4096_bytes(tenant, receiver, name, big, expected) -> None:
    path = f"/retry/big-{name}"
    receiver.plan(path, 500, default=200, body=big)
    tenant.add_endpoint(receiver.url(path))
    assert tenant.publish(event_id=f"evt_big_{name}").status_code == 202

    delivery = wait_final(tenant.client, f"evt_big_{name}")
    for attempt in delivery["attempts"]:
        stored = attempt["response_body"]
        assert stored
        assert len(stored.encode()) <= 4096
        if expected is not None:
            assert stored == expected
