"""`webhookd serve`'s uvicorn server ticks once a second (uvicorn: ten times), for an idle
server's CPU (issue 18): a stop request still ends it at once, and the Date header still
follows the clock. A bare ASGI app on 127.0.0.1, so that only the server is under test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from uvicorn.config import Config

from tests.fixtures.server import free_port
from webhookd.api.server import Server


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@contextmanager
def serving(tick: float) -> Iterator[tuple[Server, threading.Thread, str]]:
    port = free_port()
    server = Server(Config(_app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    server.tick = tick
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield server, thread, f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_stop_request_ends_the_server_before_its_next_tick() -> None:
    with serving(tick=30.0) as (server, thread, url):
        assert httpx.get(url).status_code == 204
        asked = time.monotonic()
        server.should_exit = True  # as uvicorn's signal handler and the tests' servers do
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert time.monotonic() - asked < 5  # not the 30 s tick


def test_the_date_header_follows_the_clock() -> None:
    with serving(tick=Server.tick) as (_, _, url):
        first = httpx.get(url).headers["date"]
        time.sleep(2.2)
        assert httpx.get(url).headers["date"] != first
