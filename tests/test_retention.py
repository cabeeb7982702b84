"""Retention for real: `webhookd purge [--dry-run]` and the periodic purge of a running
server delete what is older than each tenant's retention (events with their deliveries,
attempts and dead-letter entries; finished jobs), never a live delivery, on SQLite and
PostgreSQL. Rows are aged in the database directly (nothing else can make them old)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_errors import assert_error
from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.db import TestDatabase, run_sql
from tests.fixtures.delivery import wait_deliveries, wait_final, wait_until
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer, make_settings, running_server
from webhookd.config import Settings

WEBHOOKD = str(Path(sys.executable).with_name("webhookd"))


def age_events(settings: Settings, tenant: TenantCtx, event_ids: list[str], days: float) -> None:
    """Make these events ``days`` old."""
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    for event_id in event_ids:
        run_sql(
            settings,
            "UPDATE events SET created_at = :at WHERE event_id = :e AND tenant_id = "
            "(SELECT id FROM tenants WHERE email = :email)",
            at=moment,
            e=event_id,
            email=tenant_email(tenant),
        )


def tenant_email(tenant: TenantCtx) -> str:
    return f"{tenant.id}@retention.example.com"


def new_tenant(server: LiveServer, admin: httpx.Client, **settings: object) -> TenantCtx:
    tenant = create_tenant(server, admin)
    response = admin.patch(
        f"/api/v1/tenants/{tenant.id}", json={"email": tenant_email(tenant), **settings}
    )
    assert response.status_code == 200, response.text
    return tenant


def count(settings: Settings, table: str) -> int:
    return int(run_sql(settings, f"SELECT count(*) FROM {table}")[0][0])  # noqa: S608


def purge_cli(settings: Settings, tmp_path: Path, *args: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOKD_")}
    environment |= {"WEBHOOKD_DATABASE_URL": settings.database_url, "WEBHOOKD_LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [WEBHOOKD, "purge", *args],
        env=environment | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def counts_of(output: str) -> dict[str, int]:
    line = next(x for x in output.splitlines() if x.startswith(("deleted:", "would delete:")))
    return {table: int(n) for n, table in re.findall(r"(\d+) (\w+)", line)}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[Settings]:
    db = TestDatabase(backend, Path(tmp_path_factory.mktemp("retention")))
    try:
        yield make_settings(db.url, max_attempts=2)
    finally:
        db.drop()


def test_purge_command(database: Settings, receiver: Receiver, tmp_path: Path) -> None:
    receiver.plan("/retention/ok")
    receiver.plan("/retention/dead", default=500)
    receiver.plan("/retention/live", default=503)
    server = LiveServer(database).start()
    try:
        with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
            a = new_tenant(server, admin)  # the default retention: 30 days
            b = new_tenant(server, admin, retention_days=7)
            assert admin.get(f"/api/v1/tenants/{b.id}").json()["retention_days"] == 7
            a.add_endpoint(receiver.url("/retention/ok"), event_types=["ok"])
            dead = a.add_endpoint(receiver.url("/retention/dead"), event_types=["dead"])
            a.add_endpoint(
                receiver.url("/retention/live"), event_types=["live"], retry_schedule=[3600]
            )
            b.add_endpoint(receiver.url("/retention/ok"), event_types=["ok"])
            for tenant, event_type, event_id in (
                (a, "ok", "evt_old_ok"),
                (a, "dead", "evt_old_dead"),
                (a, "live", "evt_old_live"),
                (a, "ok", "evt_new_ok"),
                (b, "ok", "evt_b_ok"),
            ):
                assert tenant.publish(event_type, event_id=event_id).status_code == 202
            for tenant, event_id in ((a, "evt_old_ok"), (a, "evt_old_dead"), (b, "evt_b_ok")):
                wait_final(tenant.client, event_id)
            wait_deliveries(
                a.client, "evt_old_live", done=lambda ds: ds and ds[0]["status"] == "retrying"
            )
            job = a.client.post(
                f"/api/v1/tenants/{a.id}/endpoints/{dead['id']}/recover",
                json={"since": "2020-01-01T00:00:00Z", "until": "2020-01-02T00:00:00Z"},
            ).json()
            wait_until(
                lambda: a.client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded"
            )
    finally:
        server.stop()
    age_events(database, a, ["evt_old_ok", "evt_old_dead", "evt_old_live"], days=40)
    age_events(database, b, ["evt_b_ok"], days=10)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    run_sql(database, "UPDATE jobs SET finished_at = :at", at=old)
    before = {t: count(database, t) for t in ("events", "deliveries", "attempts", "dead_letters")}

    # evt_old_ok (1 attempt), evt_old_dead (2 attempts, 1 entry), evt_b_ok (1 attempt);
    # evt_old_live stays (its delivery is retrying), evt_new_ok is recent.
    expected = {"events": 3, "deliveries": 3, "attempts": 4, "dead_letters": 1, "jobs": 1}
    assert counts_of(purge_cli(database, tmp_path, "--dry-run")) == expected
    assert {t: count(database, t) for t in before} == before  # a dry run deletes nothing
    output = purge_cli(database, tmp_path)
    assert counts_of(output) == expected, output
    assert "tenants keeping 7 days" in output
    assert counts_of(purge_cli(database, tmp_path)) == dict.fromkeys(expected, 0)

    server = LiveServer(database).start()
    a.client.close()
    b.client.close()
    try:
        with (
            server.client(**{"X-API-Key": a.api_key}) as a_client,
            server.client(**{"X-API-Key": b.api_key}) as b_client,
        ):
            for event_id in ("evt_old_ok", "evt_old_dead"):
                assert_error(a_client.get(f"/api/v1/events/{event_id}"), 404, "not_found")
            assert_error(b_client.get("/api/v1/events/evt_b_ok"), 404, "not_found")
            (live,) = a_client.get("/api/v1/events/evt_old_live/deliveries").json()
            assert live["status"] == "retrying"
            assert a_client.get("/api/v1/events/evt_new_ok").status_code == 200
            assert a_client.get("/api/v1/dlq").json()["items"] == []
            assert_error(a_client.get(f"/api/v1/jobs/{job['id']}"), 404, "not_found")
    finally:
        server.stop()

    # Retention 0 keeps everything of the tenants on the default.
    age_events(database, a, ["evt_new_ok"], days=400)
    kept = purge_cli(database, tmp_path, "--dry-run", WEBHOOKD_RETENTION_DAYS="0")
    assert "default" not in kept and counts_of(kept)["events"] == 0
    assert counts_of(purge_cli(database, tmp_path, "--dry-run"))["events"] == 1


def test_tenant_retention_is_validated(server_admin) -> None:
    server, admin = server_admin
    tenant = new_tenant(server, admin)
    for bad in (0, -1, 36_501, 1.5, "thirty"):
        response = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"retention_days": bad})
        assert_error(response, 422, "validation_error")
    response = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"retention_days": 90})
    assert response.status_code == 200 and response.json()["retention_days"] == 90
    response = admin.patch(f"/api/v1/tenants/{tenant.id}", json={"retention_days": None})
    assert response.status_code == 200 and response.json()["retention_days"] is None
    own = tenant.client.patch(f"/api/v1/tenants/{tenant.id}", json={"retention_days": 1})
    assert_error(own, 401, "unauthorized")  # an operator's setting
    tenant.client.close()


@pytest.fixture(scope="module")
def server_admin(
    tmp_path_factory: pytest.TempPathFactory, backend: str
) -> Iterator[tuple[LiveServer, httpx.Client]]:
    """A server that purges every 0.2 s, 2 events per transaction."""
    with (
        running_server(
            tmp_path_factory, "purging", backend=backend, purge_interval=0.2, purge_batch_size=2
        ) as server,
        server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin,
    ):
        yield server, admin


def test_running_server_purges_in_batches(server_admin, receiver: Receiver) -> None:
    server, admin = server_admin
    tenant = new_tenant(server, admin)
    receiver.plan("/retention/periodic")
    receiver.plan("/retention/periodic-live", default=503)
    tenant.add_endpoint(receiver.url("/retention/periodic"), event_types=["user.created"])
    tenant.add_endpoint(
        receiver.url("/retention/periodic-live"), event_types=["live"], retry_schedule=[3600]
    )
    # A live delivery among the old events, in the second batch of two: it is kept, and
    # the batches go on past it.
    events = [f"evt_periodic_{n}" for n in range(5)]
    for event_id in [*events[:3], "evt_periodic_live", *events[3:], "evt_periodic_new"]:
        live = event_id == "evt_periodic_live"
        response = tenant.publish("live" if live else "user.created", event_id=event_id)
        assert response.status_code == 202, response.text
        if live:
            wait_deliveries(
                tenant.client, event_id, done=lambda ds: ds and ds[0]["status"] == "retrying"
            )
        else:
            wait_final(tenant.client, event_id)

    age_events(server.settings, tenant, [*events, "evt_periodic_live"], days=31)

    def purged() -> bool:
        return all(tenant.client.get(f"/api/v1/events/{e}").status_code == 404 for e in events)

    wait_until(purged, what="old events purged by the running server")
    assert tenant.client.get("/api/v1/events/evt_periodic_new").status_code == 200
    (kept,) = tenant.client.get("/api/v1/events/evt_periodic_live/deliveries").json()
    assert kept["status"] == "retrying"
    metrics = admin.get("/metrics").text
    found = re.search(r'webhook_purged_rows_total\{table="events"\} (\d+)', metrics)
    assert found and int(found.group(1).split(".")[0]) >= 5, metrics[:2000]
    tenant.client.close()
