"""GET /ready reports each dependency (database, Redis, broker) and answers 503 naming what is
down when one the configuration needs does not answer; a dependency that is not configured is
reported ``not_configured`` and never fails readiness. Each check is bounded by 2 s and the
checks run at the same time."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.db import TestDatabase
from tests.fixtures.server import LiveServer, free_port, make_settings, running_server
from tests.fixtures.services import BROKER_URL, REDIS_URL, require_service
from tests.test_database_outage import Proxy

NOT_CONFIGURED = {"redis": "not_configured", "broker": "not_configured"}


def get_ready(server: LiveServer) -> tuple[int, dict]:
    with server.client() as client:
        response = client.get("/ready")
    return response.status_code, response.json()


def assert_not_ready(server: LiveServer, checks: dict[str, str], names: list[str]) -> None:
    with server.client() as client:
        response = client.get("/ready")
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"error", "status", "checks"}, body
    assert body["error"]["code"] == "not_ready"
    assert body["status"] == "not_ready"
    assert body["checks"] == checks
    for name in names:
        assert name in body["error"]["message"], body
    for name in set(checks) - set(names):
        assert name not in body["error"]["message"], body


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung dependency)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for conn in held:
        conn.close()


def test_embedded_default(tmp_path_factory) -> None:
    with running_server(tmp_path_factory, "ready") as server:
        assert get_ready(server) == (
            200,
            {"status": "ready", "checks": {"database": "ok", **NOT_CONFIGURED}},
        )


def test_redis_configured_and_reachable(tmp_path_factory) -> None:
    require_service("redis")
    with running_server(tmp_path_factory, "ready", redis_url=REDIS_URL) as server:
        status, body = get_ready(server)
    assert status == 200, body
    assert body["checks"] == {"database": "ok", "redis": "ok", "broker": "not_configured"}


def test_redis_down_is_503_naming_redis(tmp_path_factory) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    with running_server(tmp_path_factory, "ready", redis_url=closed) as server:
        checks = {"database": "ok", "redis": "down", "broker": "not_configured"}
        assert_not_ready(server, checks, ["redis"])


def test_broker_configured_and_reachable(tmp_path_factory) -> None:
    require_service("rabbitmq")
    with running_server(tmp_path_factory, "ready", broker_url=BROKER_URL) as server:
        status, body = get_ready(server)
    assert status == 200, body
    assert body["checks"] == {"database": "ok", "redis": "not_configured", "broker": "ok"}


def test_broker_down_is_503_naming_broker(tmp_path_factory) -> None:
    closed = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    with running_server(tmp_path_factory, "ready", broker_url=closed) as server:
        checks = {"database": "ok", "redis": "not_configured", "broker": "down"}
        assert_not_ready(server, checks, ["broker"])


def test_hung_dependencies_are_cut_off_together(tmp_path_factory, black_hole: int) -> None:
    """Redis and the broker both accept connections and never answer: each check gives up
    after 2 s, and since they run at the same time the answer takes ~2 s, not ~4 s."""
    settings = {
        "redis_url": f"redis://127.0.0.1:{black_hole}/0",
        "broker_url": f"amqp://guest:guest@127.0.0.1:{black_hole}//",
    }
    with running_server(tmp_path_factory, "ready", **settings) as server:
        started = time.monotonic()
        checks = {"database": "ok", "redis": "down", "broker": "down"}
        assert_not_ready(server, checks, ["redis", "broker"])
        elapsed = time.monotonic() - started
    assert 1.9 <= elapsed < 3.5, elapsed


def test_database_down_is_503_then_ready_again(tmp_path: Path) -> None:
    """PostgreSQL behind a TCP proxy (as in test_database_outage.py): cut, then restored."""
    require_service("postgresql")
    database = TestDatabase("postgresql", tmp_path)
    proxy = Proxy(("127.0.0.1", 5432))
    try:
        name = database.url.rsplit("/", 1)[1]
        server = LiveServer(make_settings(f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}"))
        server.start()
        try:
            assert get_ready(server)[0] == 200
            proxy.cut()
            try:
                checks = {"database": "down", **NOT_CONFIGURED}
                assert_not_ready(server, checks, ["database"])
            finally:
                proxy.restore()
            status, body = get_ready(server)
            assert status == 200, body
            assert body["checks"] == {"database": "ok", **NOT_CONFIGURED}
        finally:
            server.stop()
    finally:
        proxy.cut()
        database.drop()
