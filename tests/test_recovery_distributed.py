"""Test sends, replay and recovery jobs on the production stack: the API publishes to
PostgreSQL and wakes the two Celery workers through RabbitMQ; the workers' job runners
share the recovery job (one at a time holds it) and their engines send what it requeues."""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.delivery import wait_until
from tests.fixtures.processes import ApiProcess, WorkerProcess
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY
from tests.fixtures.stack import production_stack

pytestmark = pytest.mark.slow
EVENTS = 40
PATH = "/dist/recover"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[tuple[ApiProcess, list[WorkerProcess]]]:
    with production_stack(tmp_path, WEBHOOKD_MAX_ATTEMPTS="2", WEBHOOKD_JOB_BATCH_SIZE="7") as env:
        api = ApiProcess(env, tmp_path / "api.log")
        workers = [
            WorkerProcess(env, tmp_path / "worker1.log"),
            WorkerProcess(env, tmp_path / "worker2.log", via_celery=True),
        ]
        try:
            api.start()
            for worker in workers:
                worker.start()
            yield api, workers
        finally:
            for process in (*workers, api):
                process.terminate()


def test_recover_replay_and_test_send_on_the_stack(processes, receiver: Receiver) -> None:
    api, _ = processes
    receiver.plan(PATH, default=500)
    admin = httpx.Client(base_url=api.url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=10)
    tenant = admin.post(
        "/api/v1/tenants", json={"name": "dist", "email": "d@example.com", "rate_limit": 10_000}
    ).json()
    client = httpx.Client(base_url=api.url, headers={"X-API-Key": tenant["api_key"]}, timeout=10)
    endpoint = client.post(
        f"/api/v1/tenants/{tenant['id']}/endpoints", json={"url": receiver.url(PATH)}
    ).json()
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    for n in range(EVENTS):
        body = {"event_id": f"evt_{n}", "event_type": "order.paid", "payload": {"n": n}}
        assert client.post("/api/v1/events", json=body).status_code == 202

    def all_dead() -> bool:
        return len(client.get("/api/v1/dlq", params={"limit": 100}).json()["items"]) == EVENTS

    wait_until(all_dead, timeout=60, what="every delivery dead-lettered")

    receiver.plan(PATH)
    job = client.post(
        f"/api/v1/tenants/{tenant['id']}/endpoints/{endpoint['id']}/recover",
        json={"since": since},
    ).json()
    assert job["total"] == EVENTS

    def finished() -> dict | None:
        found = client.get(f"/api/v1/jobs/{job['id']}").json()
        return found if found["status"] == "succeeded" else None

    final = wait_until(finished, timeout=60, what="the recovery job done by the workers")
    assert (final["done"], final["failed"]) == (EVENTS, 0)
    receiver.wait_for(3 * EVENTS, PATH, timeout=60)
    counts = collections.Counter(json.loads(r.body)["event_id"] for r in receiver.received(PATH))
    assert set(counts) == {f"evt_{n}" for n in range(EVENTS)}
    assert min(counts.values()) == 3

    # Replay one event, and a test send: both delivered by a worker.
    replayed = client.post("/api/v1/events/evt_0/replay")
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["deliveries"][0]["outcome"] in ("restarted", "in_progress")
    test = client.post(f"/api/v1/tenants/{tenant['id']}/endpoints/{endpoint['id']}/test")
    assert test.status_code == 202, test.text

    def delivered() -> bool:
        bodies = [json.loads(r.body) for r in receiver.received(PATH)]
        replays = [b for b in bodies if b["event_id"] == "evt_0"]
        tests = [b for b in bodies if b["event_type"] == "webhookd.test"]
        return len(replays) >= 4 and len(tests) == 1

    wait_until(delivered, timeout=30, what="the replay and the test send delivered")
    admin.close()
    client.close()
