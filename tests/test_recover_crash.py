"""A recovery job whose process is killed with SIGKILL mid-way is taken up again by the
next process from where it was: every dead-lettered delivery of the window is sent again
exactly once by the job, none is skipped (SQLite and PostgreSQL)."""

from __future__ import annotations

import collections
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.db import TestDatabase
from tests.fixtures.delivery import wait_until
from tests.fixtures.processes import ApiProcess
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY

EVENTS = 60
PATH = "/recover/crash"


@pytest.fixture
def process(tmp_path: Path, backend: str) -> Iterator[ApiProcess]:
    """``webhookd serve``: jobs in batches of 5 with a pause between them (so that the kill
    lands mid-way), a job lease of 1 s (so that the next process takes it up soon)."""
    database = TestDatabase(backend, tmp_path)
    env = {
        "WEBHOOKD_DATABASE_URL": database.url,
        "WEBHOOKD_MAX_ATTEMPTS": "2",
        "WEBHOOKD_JOB_BATCH_SIZE": "5",
        "WEBHOOKD_JOB_BATCH_PAUSE": "0.15",
        "WEBHOOKD_JOB_LEASE_SECONDS": "1",
        "WEBHOOKD_LEASE_SECONDS": "2",
    }
    proc = ApiProcess(env, tmp_path / "webhookd.log")
    try:
        yield proc
    finally:
        proc.terminate()
        database.drop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


def test_killed_recovery_resumes_where_it_was(process: ApiProcess, receiver: Receiver) -> None:
    receiver.plan(PATH, default=500)
    process.start()
    admin = httpx.Client(base_url=process.url, headers={"X-Admin-Key": ADMIN_KEY}, timeout=10)
    created = admin.post(
        "/api/v1/tenants", json={"name": "crash", "email": "c@example.com", "rate_limit": 10_000}
    )
    assert created.status_code == 201, created.text
    tenant = created.json()
    client = httpx.Client(base_url=process.url, headers={"X-API-Key": tenant["api_key"]})
    endpoint = client.post(
        f"/api/v1/tenants/{tenant['id']}/endpoints", json={"url": receiver.url(PATH)}
    ).json()
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    for n in range(EVENTS):
        response = client.post(
            "/api/v1/events",
            json={"event_id": f"evt_crash_{n}", "event_type": "a.b", "payload": {"n": n}},
        )
        assert response.status_code == 202, response.text

    def all_dead() -> bool:
        page = client.get("/api/v1/dlq", params={"limit": 100}).json()
        return len(page["items"]) == EVENTS

    wait_until(all_dead, timeout=30, what="every delivery dead-lettered")
    receiver.plan(PATH)  # the endpoint is back
    job = client.post(
        f"/api/v1/tenants/{tenant['id']}/endpoints/{endpoint['id']}/recover",
        json={"since": since},
    ).json()
    assert job["total"] == EVENTS, job

    def progressed() -> dict | None:
        found = client.get(f"/api/v1/jobs/{job['id']}").json()
        return found if found["done"] >= 10 else None

    at_kill = wait_until(progressed, timeout=20, what="the job under way")
    process.kill()
    assert at_kill["status"] == "running" and at_kill["done"] < EVENTS, at_kill
    sent_before = len(receiver.received(PATH)) - 2 * EVENTS
    assert sent_before < EVENTS  # the kill really cut the job short

    process.start()  # same port, same database
    client.base_url = httpx.URL(process.url)

    def finished() -> dict | None:
        found = client.get(f"/api/v1/jobs/{job['id']}").json()
        return found if found["status"] != "running" and found["status"] != "queued" else None

    final = wait_until(finished, timeout=30, what="the job finished after the restart")
    assert final["status"] == "succeeded", final
    assert (final["total"], final["done"], final["failed"]) == (EVENTS, EVENTS, 0)

    def all_sent() -> bool:
        return len(receiver.received(PATH)) >= 3 * EVENTS

    wait_until(all_sent, timeout=30, what="every recovered delivery sent")
    counts = collections.Counter(json.loads(r.body)["event_id"] for r in receiver.received(PATH))
    # Two failed attempts before the recovery, then the recovered one (a delivery cut off
    # mid-flight by the kill may arrive twice: at-least-once).
    assert set(counts) == {f"evt_crash_{n}" for n in range(EVENTS)}
    assert min(counts.values()) >= 3, counts
    assert sum(counts.values()) - 3 * EVENTS <= 5, counts  # at most one batch in flight

    # The job restarted each delivery exactly once: one fresh cycle each, all succeeded.
    def states() -> set[tuple[int, str]]:
        return {
            (d["cycle"], d["status"])
            for n in range(EVENTS)
            for d in client.get(f"/api/v1/events/evt_crash_{n}/deliveries").json()
        }

    wait_until(lambda: states() == {(2, "succeeded")}, timeout=15, what="all recorded")
    log = process.log.read_text()
    assert log.count('"event":"job.started"') >= 1
    admin.close()
    client.close()
