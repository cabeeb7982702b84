"""Security round 2, item 2: the request head is capped (431) and slow clients are cut off
(408), by the protocol `webhookd serve` runs (api/server.py). Raw sockets, so that nothing
between the test and the server trims or times the request."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.server import LiveServer, running_server

HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(
        tmp_path_factory,
        request_head_timeout=HEAD_TIMEOUT,
        request_body_timeout=BODY_TIMEOUT,
    ) as srv:
        yield srv


def _connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the timeout)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send, ignoring that the server may already have answered and closed."""
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        pass


def _read_response(sock: socket.socket) -> bytes:
    """One whole response on a kept-alive connection: its head, then Content-Length bytes
    (a response may arrive in several segments)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed within the body"
        body += chunk
    return head + b"\r\n\r\n" + body


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([b"X-Big-%d: %s" % (n, b"a" * 1024) for n in range(800)], id="800x1KB"),
        pytest.param([b"X-One: " + b"a" * (1024 * 1024)], id="one-1MB-header"),
        pytest.param([b"X-N%d: v" % n for n in range(150)], id="150-headers"),
        pytest.param([b"X-Mid: " + b"a" * (17 * 1024)], id="17KB"),
    ],
)
def test_an_oversized_head_is_a_431_and_the_connection_closes(server, headers) -> None:
    with _connect(server) as sock:
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
        _send_quietly(sock, request)
        answer = _read_all(sock)
    assert _status(answer) == 431, answer[:200]
    assert b'"code":"request_header_fields_too_large"' in answer


def test_a_head_within_the_limits_is_served(server) -> None:
    headers = b"".join(b"X-N%d: %s\r\n" % (n, b"v" * 100) for n in range(90))  # ~10 KB
    with _connect(server) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n"
        )
        answer = _read_all(sock)
    assert _status(answer) == 200 and answer.endswith(b'{"status":"ok"}')


def test_keep_alive_requests_each_get_their_own_head_budget(server) -> None:
    one = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"v" * 12_000 + b"\r\n\r\n"
    with _connect(server) as sock:
        for _ in range(3):  # 3 x 12 KB on one connection: each head is under 16 KB
            sock.sendall(one)
            assert _status(_read_response(sock)) == 200


def test_a_client_that_never_finishes_its_head_is_cut_off(server) -> None:
    with _connect(server) as sock:
        begin = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # ... and never the blank line
        answer = _read_all(sock)
        elapsed = time.monotonic() - begin
    assert _status(answer) == 408 and b'"code":"request_timeout"' in answer
    assert HEAD_TIMEOUT * 0.8 < elapsed < HEAD_TIMEOUT + 3


def test_a_slowloris_trickle_does_not_extend_the_deadline(server) -> None:
    with _connect(server) as sock:
        begin = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        closed = False
        for n in range(40):  # one header byte every 0.1 s
            try:
                sock.sendall(b"X-Slow-%d: v\r\n" % n)
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - begin > HEAD_TIMEOUT + 2:
                break
        answer = b"" if closed else _read_all(sock)
        elapsed = time.monotonic() - begin
    assert closed or _status(answer) == 408
    assert elapsed < HEAD_TIMEOUT + 3


def test_a_client_that_never_sends_its_whole_body_is_cut_off(server) -> None:
    with _connect(server) as sock:
        begin = time.monotonic()
        sock.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'X-API-Key: whk_nope\r\nContent-Length: 100\r\n\r\n{"event_id":'
        )
        answer = _read_all(sock)
        elapsed = time.monotonic() - begin
    assert answer == b"" or _status(answer) == 408, answer[:200]
    assert BODY_TIMEOUT * 0.8 < elapsed < BODY_TIMEOUT + 3


def test_an_idle_connection_is_closed(server) -> None:
    with _connect(server) as sock:
        begin = time.monotonic()
        answer = _read_all(sock)
        elapsed = time.monotonic() - begin
    assert answer == b"" or _status(answer) == 408
    assert elapsed < HEAD_TIMEOUT + 3
