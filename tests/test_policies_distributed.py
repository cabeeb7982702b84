"""Endpoint policies on the production stack: API + two Celery workers + RabbitMQ +
PostgreSQL + Redis. FIFO order holds across the workers with a receiver that fails the
first try of every third event; a rate limit holds across the workers (buckets in Redis);
the breaker's state is shared (it opens for both workers)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.delivery import wait_until
from tests.fixtures.processes import ApiProcess, WorkerProcess
from tests.fixtures.receiver import Received, Receiver
from tests.fixtures.server import ADMIN_KEY
from tests.fixtures.stack import production_stack
from tests.test_endpoint_rate_limit import check_rate

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[str, httpx.Client]]:
    """The stack with two delivering workers; (tenant id, tenant client)."""
    env = {"WEBHOOKD_BREAKER_THRESHOLD": "3", "WEBHOOKD_BREAKER_COOLDOWN": "2"}
    with production_stack(tmp_path, **env) as stack:
        processes = [
            ApiProcess(stack, tmp_path / "api.log"),
            WorkerProcess(stack, tmp_path / "worker1.log"),
            WorkerProcess(stack, tmp_path / "worker2.log", via_celery=True),
        ]
        try:
            for process in processes:
                process.start()
            url = processes[0].url
            with httpx.Client(base_url=url, headers={"X-Admin-Key": ADMIN_KEY}) as admin:
                tenant = admin.post(
                    "/api/v1/tenants",
                    json={"name": "policies", "email": "p@example.com", "rate_limit": 1_000_000},
                ).json()
            headers = {"X-API-Key": tenant["api_key"]}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                yield tenant["id"], client
        finally:
            for process in processes:
                process.terminate()


def add_endpoint(api: tuple[str, httpx.Client], url: str, **fields: object) -> dict:
    tenant_id, client = api
    response = client.post(f"/api/v1/tenants/{tenant_id}/endpoints", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def publish(client: httpx.Client, prefix: str, count: int) -> None:
    for n in range(count):
        body = {"event_id": f"{prefix}_{n}", "event_type": "order.paid", "payload": {"n": n}}
        response = client.post("/api/v1/events", json=body)
        assert response.status_code == 202, response.text


def test_policies_hold_across_two_workers(api, receiver: Receiver) -> None:
    tenant_id, client = api
    tries: dict[int, int] = {}

    def answer(request: Received) -> int:
        n = json.loads(request.body)["payload"]["n"]
        tries[n] = tries.get(n, 0) + 1
        return 500 if n % 3 == 0 and tries[n] == 1 else 200

    receiver.plan_with("/d/fifo", answer)
    receiver.plan("/d/limited")
    receiver.plan("/d/broken", default=500)
    add_endpoint(api, receiver.url("/d/fifo"), ordering="fifo", retry_schedule=[0.1])
    add_endpoint(api, receiver.url("/d/limited"), rate_limit=20)
    broken = add_endpoint(api, receiver.url("/d/broken"), retry_schedule=[0.05] * 20)
    count = 60
    publish(client, "evt_d", count)

    # FIFO: every event tried until it succeeds before the next one is tried at all.
    requests = receiver.wait_for(count + count // 3, "/d/fifo", timeout=60)
    seen = [json.loads(r.body)["payload"]["n"] for r in requests]
    assert seen == [n for n in range(count) for _ in range(2 if n % 3 == 0 else 1)]

    # The rate limit, over both workers.
    limited = receiver.wait_for(count, "/d/limited", timeout=30)
    check_rate(limited, 20)

    # The breaker opened once for both workers: failures stop after the threshold (plus
    # attempts already out when it opened), then one probe per cool-down.
    path = f"/api/v1/tenants/{tenant_id}/endpoints/{broken['id']}"
    wait_until(lambda: client.get(path).json()["circuit"] in ("open", "half_open"), 20, "open")
    before = len(receiver.received("/d/broken"))
    time.sleep(1.5)
    assert len(receiver.received("/d/broken")) - before <= 2
