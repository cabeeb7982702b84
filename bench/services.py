"""The services of the distributed scenarios: a fresh PostgreSQL database and a fresh
RabbitMQ vhost per scenario (named ``webhookd_bench_*``), dropped afterwards. A service that
is down (another engineer's fault drill) is waited for, up to two minutes."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from bench.procs import BenchError
from bench.webhookd_proc import BROKER, PG_SERVER, pg


def wait_for_service(name: str, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{name} is not answering on 127.0.0.1:{port} after {timeout:.0f} s "
                    "(DEVELOPERS.md says how to start it)"
                ) from None
            time.sleep(2)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=60, capture_output=True)


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new database; its URL. Dropped (connections forced off) on exit."""
    wait_for_service("PostgreSQL", 5432)
    name = f"webhookd_bench_{uuid.uuid4().hex[:10]}"
    pg(f"{PG_SERVER}/postgres", f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        pg(f"{PG_SERVER}/postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_vhost() -> Iterator[str]:
    """A new RabbitMQ vhost (its queues cannot meet anyone else's); its broker URL."""
    wait_for_service("RabbitMQ", 5672)
    name = f"webhookd_bench_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{BROKER}/{name}"
    finally:
        try:
            _rabbitmqctl("delete_vhost", name)
        except (subprocess.SubprocessError, OSError):  # RabbitMQ stopped by a drill meanwhile
            wait_for_service("RabbitMQ", 5672, timeout=60)
            _rabbitmqctl("delete_vhost", name)
