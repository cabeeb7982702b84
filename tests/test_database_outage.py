"""A database outage answers 503 database_unavailable with Retry-After (retry with the same
event_id), never a 500, and the API recovers by itself once the database is back.

PostgreSQL behind a TCP proxy in the test: the outage closes every connection and refuses
new ones, as a restart or a network cut does to the API's pool."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api_errors import assert_error
from tests.conftest import TenantCtx, create_tenant
from tests.fixtures.db import TestDatabase
from tests.fixtures.server import ADMIN_KEY, LiveServer, make_settings


class Proxy:
    """127.0.0.1:port -> PostgreSQL; ``cut()`` drops every connection and stops listening,
    ``restore()`` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def cut(self) -> None:
        _close(self._listener)
        with self._lock:
            for conn in self._conns:
                _close(conn)
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv; close() alone doesn't
    except OSError:
        pass
    sock.close()


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Proxy]]:
    database = TestDatabase("postgresql", Path(tmp_path_factory.mktemp("outage")))
    try:
        proxy = Proxy(("127.0.0.1", 5432))
        name = database.url.rsplit("/", 1)[1]
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}"
        server = LiveServer(make_settings(url)).start()
        try:
            yield server, proxy
        finally:
            server.stop()
            proxy.cut()
    finally:
        database.drop()


@pytest.fixture
def tenant(outage: tuple[LiveServer, Proxy]) -> Iterator[TenantCtx]:
    server, _ = outage
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        ctx = create_tenant(server, admin)
    yield ctx
    ctx.client.close()


def test_publish_during_an_outage_is_503_then_recovers(
    outage: tuple[LiveServer, Proxy], tenant: TenantCtx
) -> None:
    _, proxy = outage
    assert tenant.publish(event_id="before").status_code == 202  # the key is now cached
    proxy.cut()
    try:
        for event_id in ("during", "during"):  # broken pooled connections, then refused ones
            response = tenant.publish(event_id=event_id)
            assert_error(response, 503, "database_unavailable")
            assert response.headers["Retry-After"] == "1"
        listed = tenant.client.get("/api/v1/events")  # a route that reads
        assert_error(listed, 503, "database_unavailable")
    finally:
        proxy.restore()
    retried = tenant.publish(event_id="during")  # the retry, same event_id: accepted once
    assert retried.status_code == 202, retried.text
    events = tenant.client.get("/api/v1/events").json()["items"]
    assert sorted(e["event_id"] for e in events) == ["before", "during"]


def test_the_first_publish_after_a_restart_is_accepted(
    outage: tuple[LiveServer, Proxy], tenant: TenantCtx
) -> None:
    """Pooled connections died with the server while nothing was publishing: the publish
    that finds one retries its batch on a new connection instead of answering 503."""
    _, proxy = outage
    assert tenant.publish(event_id="before-restart").status_code == 202
    proxy.cut()
    proxy.restore()
    for n in range(3):
        response = tenant.publish(event_id=f"after-restart-{n}")
        assert response.status_code == 202, response.text
