"""Receivers that misbehave on purpose: a body that never ends, bytes trickled slowly,
silence. Each attempt ends within the total timeout and reads at most the response cap."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import create_tenant
from tests.fixtures.delivery import wait_final
from tests.fixtures.server import ADMIN_KEY, LiveServer, running_server

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"


class HostileReceiver:
    """A raw TCP server on 127.0.0.1; each behaviour stops by itself within ``limit`` s."""

    def __init__(self, limit: float = 5.0) -> None:
        self.limit = limit
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + self.limit
        try:
            request = conn.recv(65536)
            path = request.split(b" ", 2)[1] if b" " in request else b"/"
            if path == b"/forever":  # an endless body, as fast as the socket takes it
                conn.sendall(HEAD)
                while time.monotonic() < deadline and not self._stop.is_set():
                    conn.sendall(b"x" * 16384)
            elif path == b"/trickle":  # one byte every 0.2 s
                conn.sendall(HEAD)
                while time.monotonic() < deadline and not self._stop.is_set():
                    conn.sendall(b"x")
                    time.sleep(0.2)
            elif path == b"/silent":  # accepts, then says nothing
                while time.monotonic() < deadline and not self._stop.is_set():
                    time.sleep(0.05)
        except OSError:
            pass  # the client hung up: that is the point
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileReceiver]:
    receiver = HostileReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, backend: str) -> Iterator[LiveServer]:
    settings = {"request_timeout": 1.0, "max_attempts": 1}
    with running_server(tmp_path_factory, "hostile", backend=backend, **settings) as srv:
        yield srv


@pytest.fixture
def tenant(server: LiveServer):
    with server.client(**{"X-Admin-Key": ADMIN_KEY}) as admin:
        ctx = create_tenant(server, admin)
    yield ctx
    ctx.client.close()


def _attempt(tenant, url: str, event_id: str) -> dict:
    tenant.add_endpoint(url)
    started = time.monotonic()
    assert tenant.publish("user.created", event_id=event_id).status_code == 202
    delivery = wait_final(tenant.client, event_id)
    assert time.monotonic() - started < 5
    (attempt,) = delivery["attempts"]
    return attempt


def test_endless_body_is_read_up_to_the_cap(tenant, hostile) -> None:
    attempt = _attempt(tenant, hostile.url("/forever"), "evt_forever")
    assert attempt["succeeded"] and attempt["response_status"] == 200
    assert len(attempt["response_body"].encode()) == 4096
    assert attempt["duration_ms"] < 1000


def test_trickled_body_is_cut_by_the_total_timeout(tenant, hostile) -> None:
    attempt = _attempt(tenant, hostile.url("/trickle"), "evt_trickle")
    assert not attempt["succeeded"] and attempt["error_kind"] == "timeout"
    assert 900 <= attempt["duration_ms"] < 2500


def test_silent_receiver_is_cut_by_the_total_timeout(tenant, hostile) -> None:
    attempt = _attempt(tenant, hostile.url("/silent"), "evt_silent")
    assert not attempt["succeeded"] and attempt["error_kind"] == "timeout"
    assert 900 <= attempt["duration_ms"] < 2500
