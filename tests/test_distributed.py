"""The production stack for real: API + two Celery workers + RabbitMQ + PostgreSQL + Redis.

2,000 events reach the receiver with none lost: normally, with one worker killed by SIGKILL
mid-run, and with RabbitMQ stopped and started again mid-run. (At-least-once: a delivery cut
off mid-flight may arrive twice; the receiver counts distinct webhook-ids.)
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.db import run_sql
from tests.fixtures.processes import ApiProcess, WorkerProcess
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, make_settings
from tests.fixtures.stack import production_stack, rabbitmqctl

pytestmark = pytest.mark.slow
EVENTS = 2000


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database and RabbitMQ vhost; the environment of every process."""
    with production_stack(tmp_path) as env:
        yield env


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


class Run:
    def __init__(self, stack: dict[str, str], tmp_path: Path, receiver: Receiver) -> None:
        self.stack = stack
        self.receiver = receiver
        self.api = ApiProcess(stack, tmp_path / "api.log")
        self.workers = [
            WorkerProcess(stack, tmp_path / "worker1.log"),
            WorkerProcess(stack, tmp_path / "worker2.log", via_celery=True),
        ]

    def start(self) -> None:
        self.api.start()
        for worker in self.workers:
            worker.start()
        admin = httpx.Client(base_url=self.api.url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=10)
        tenant = admin.post(
            "/api/v1/tenants",
            json={"name": "dist", "email": "d@example.com", "rate_limit": 1_000_000},
        ).json()
        self.api_key = tenant["api_key"]
        endpoint = httpx.post(
            f"{self.api.url}/api/v1/tenants/{tenant['id']}/endpoints",
            headers={"X-API-Key": self.api_key},
            json={"url": self.receiver.url("/dist")},
        )
        assert endpoint.status_code == 201, endpoint.text

    def publish(self, start: int, stop: int, threads: int = 8) -> None:
        def run(offset: int) -> None:
            headers = {"X-API-Key": self.api_key}
            with httpx.Client(base_url=self.api.url, headers=headers, timeout=30) as client:
                for n in range(start + offset, stop, threads):
                    body = {"event_id": f"evt_{n}", "event_type": "order.paid", "payload": {"n": n}}
                    response = client.post("/api/v1/events", json=body)
                    assert response.status_code == 202, response.text

        with cf.ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, range(threads)))

    def delivered(self) -> int:
        return len({r.header("webhook-id") for r in self.receiver.received("/dist")})

    def wait_all_delivered(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.delivered() < EVENTS and time.monotonic() < deadline:
            time.sleep(0.2)
        assert self.delivered() == EVENTS, f"{EVENTS - self.delivered()} accepted events lost"
        settings = make_settings(self.stack["WEBHOOKD_DATABASE_URL"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = run_sql(settings, "SELECT status, count(*) FROM deliveries GROUP BY status")
            if dict(rows) == {"succeeded": EVENTS}:
                return
            time.sleep(0.2)
        assert dict(rows) == {"succeeded": EVENTS}

    def stop(self) -> None:
        for process in (*self.workers, self.api):
            process.terminate()


@pytest.fixture
def run(stack: dict[str, str], tmp_path: Path, receiver: Receiver) -> Iterator[Run]:
    r = Run(stack, tmp_path, receiver)
    try:
        r.start()
        yield r
    finally:
        r.stop()


def worker_successes(worker: WorkerProcess) -> float:
    text = httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("webhook_delivery_success_total{")
    )


def test_two_workers_deliver_everything(run: Run) -> None:
    run.publish(0, EVENTS)
    run.wait_all_delivered()
    shares = [worker_successes(w) for w in run.workers]
    assert sum(shares) >= EVENTS and all(s > 0 for s in shares), shares  # both took work


def test_worker_killed_mid_run_loses_nothing(run: Run, receiver: Receiver) -> None:
    receiver.plan("/dist", delay=0.02)  # keep deliveries in flight when the kill lands
    run.publish(0, EVENTS // 2)
    receiver.wait_for(200, "/dist", timeout=60)
    run.workers[0].kill()
    run.publish(EVENTS // 2, EVENTS)
    run.wait_all_delivered()


def test_rabbitmq_stopped_and_started_mid_run_loses_nothing(run: Run) -> None:
    run.publish(0, EVENTS // 2)
    rabbitmqctl("stop_app")
    try:
        run.publish(EVENTS // 2, EVENTS)  # accepted while the broker is down
        time.sleep(2)
    finally:
        rabbitmqctl("start_app")
    run.wait_all_delivered()
