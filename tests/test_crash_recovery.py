"""A webhookd process killed with SIGKILL mid-delivery loses nothing: after a restart every
accepted event is delivered (at-least-once: a delivery cut off mid-flight may arrive twice)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.processes import ApiProcess
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY

EVENTS = 40


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def process(tmp_path: Path) -> Iterator[ApiProcess]:
    """``webhookd serve`` on SQLite; a restart reuses its port and database."""
    env = {
        "WEBHOOKD_DATABASE_URL": f"sqlite:///{tmp_path / 'webhookd.db'}",
        "WEBHOOKD_LEASE_SECONDS": "2",
    }
    proc = ApiProcess(env, tmp_path / "webhookd.log")
    yield proc
    proc.terminate()


def _setup_tenant(url: str, receiver: Receiver) -> tuple[httpx.Client, dict]:
    admin = httpx.Client(base_url=url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=10)
    created = admin.post(
        "/api/v1/tenants", json={"name": "crash", "email": "c@example.com", "rate_limit": 10_000}
    )
    assert created.status_code == 201, created.text
    tenant = created.json()
    client = httpx.Client(base_url=url, headers={"X-API-Key": tenant["api_key"]}, timeout=10)
    endpoint = client.post(
        f"/api/v1/tenants/{tenant['id']}/endpoints", json={"url": receiver.url("/slow")}
    )
    assert endpoint.status_code == 201, endpoint.text
    return client, tenant


def test_sigkill_mid_delivery_then_restart_delivers_everything(process, receiver) -> None:
    receiver.plan("/slow", delay=1.0)
    process.start()
    client, tenant = _setup_tenant(process.url, receiver)
    for n in range(EVENTS):
        response = client.post(
            "/api/v1/events",
            json={"event_id": f"evt_{n}", "event_type": "order.completed", "payload": {"n": n}},
        )
        assert response.status_code == 202, response.text
    receiver.wait_for(5, "/slow", timeout=10)  # deliveries are in flight, answers still pending
    process.kill()
    before_restart = {r.header("webhook-id") for r in receiver.received("/slow")}
    assert len(before_restart) < EVENTS  # the kill really cut the work short

    receiver.plan("/slow")  # answer at once from now on
    client.base_url = httpx.URL(process.url)  # same port after restart
    process.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        delivered = {r.header("webhook-id") for r in receiver.received("/slow")}
        if len(delivered) == EVENTS:
            break
        time.sleep(0.1)
    delivered = {r.header("webhook-id") for r in receiver.received("/slow")}
    assert len(delivered) == EVENTS, f"{EVENTS - len(delivered)} accepted events lost"

    # Every delivery reaches `succeeded` in the API too (recorded, not just sent).
    deadline = time.monotonic() + 15
    statuses: list[str] = []
    while time.monotonic() < deadline:
        statuses = [
            d["status"]
            for n in range(EVENTS)
            for d in client.get(f"/api/v1/events/evt_{n}/deliveries").json()
        ]
        if statuses == ["succeeded"] * EVENTS:
            break
        time.sleep(0.2)
    assert statuses == ["succeeded"] * EVENTS
    client.close()

    # The JSON logs carry delivery context but never a key, a secret or a signature.
    log = process.log.read_text()
    assert '"event":"delivery.succeeded"' in log and '"delivery_id"' in log
    for secret in (tenant["api_key"], tenant["secret_key"], ADMIN_KEY, "sha256=", "v1,"):
        assert secret not in log


def test_graceful_stop_hands_back_unfinished_deliveries(process, receiver) -> None:
    """SIGTERM: attempts in flight get a grace period; the next process resumes the rest."""
    receiver.plan("/slow", delay=0.5)
    process.start()
    client, _ = _setup_tenant(process.url, receiver)
    for n in range(10):
        response = client.post(
            "/api/v1/events",
            json={"event_id": f"evt_t{n}", "event_type": "a.b", "payload": {"n": n}},
        )
        assert response.status_code == 202
    receiver.wait_for(1, "/slow")
    process.terminate()
    assert process.proc is not None
    assert process.proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert '"engine.stopped"' in process.log.read_text()  # the graceful path ran
    receiver.plan("/slow")
    process.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if len({r.header("webhook-id") for r in receiver.received("/slow")}) == 10:
            break
        time.sleep(0.1)
    assert len({r.header("webhook-id") for r in receiver.received("/slow")}) == 10
    client.close()
