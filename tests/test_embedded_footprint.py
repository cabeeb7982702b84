"""Issue 18 (RSS): the embedded default loads only what it uses. `webhookd serve` on SQLite
without Redis or a broker never imports redis-py, Celery/kombu, the JSON Schema library (no
event type has a schema) or Alembic (the database is already at the newest migration). The
real command runs under `python -X importtime`, which names every module it imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fixtures.processes import FAST_ENV, ApiProcess
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import ADMIN_KEY

UNUSED = ("alembic", "mako", "celery", "kombu", "amqp", "billiard", "redis", "jsonschema_rs")


def _imported(log: str) -> set[str]:
    """Top-level packages named by ``-X importtime`` lines."""
    return {m.group(1) for m in re.finditer(r"^import time:.*\|\s*([\w]+)[\w.]*$", log, re.M)}


def _env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOKD_", "CELERY_"))}
    return {**clean, **FAST_ENV, "WEBHOOKD_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"}


def _migrate(tmp_path: Path) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "webhookd", "migrate"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return _imported(result.stderr)


def test_migrate_loads_alembic_only_when_the_database_is_behind(tmp_path: Path) -> None:
    assert "alembic" in _migrate(tmp_path)  # a new database: migrated by Alembic
    assert "alembic" not in _migrate(tmp_path)  # at the newest revision: one SELECT


def test_embedded_serve_delivers_without_loading_unused_libraries(tmp_path: Path) -> None:
    _migrate(tmp_path)
    receiver = Receiver().start()
    api = ApiProcess({}, tmp_path / "serve.log")
    api.env = {**_env(tmp_path), "PYTHONPROFILEIMPORTTIME": "1"}  # = python -X importtime
    try:
        api.start()
        with httpx.Client(base_url=api.url, timeout=10) as client:
            tenant = client.post(
                "/api/v1/tenants",
                json={"name": "footprint", "email": "ops@example.com"},
                headers={"X-Admin-Key": ADMIN_KEY},
            ).json()
            headers = {"X-API-Key": tenant["api_key"]}
            endpoint = client.post(
                f"/api/v1/tenants/{tenant['id']}/endpoints",
                json={"url": receiver.url("/footprint")},
                headers=headers,
            )
            assert endpoint.status_code == 201, endpoint.text
            published = client.post(
                "/api/v1/events",
                json={"event_id": "evt_1", "event_type": "user.created", "payload": {"n": 1}},
                headers=headers,
            )
            assert published.status_code == 202, published.text
            receiver.wait_for(1, "/footprint")
            ready = client.get("/ready").json()
            assert ready["checks"] == {
                "database": "ok",
                "redis": "not_configured",
                "broker": "not_configured",
            }
    finally:
        api.terminate()
        receiver.stop()
    imported = _imported(api.log.read_text())
    assert {"webhookd", "fastapi", "aiohttp", "sqlalchemy"} <= imported  # the log is read
    assert sorted(imported & set(UNUSED)) == []
