"""Processes and services of a drill: webhookd servers and workers, the receiver,
PostgreSQL databases, RabbitMQ vhosts, and the service outages themselves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import httpx

HERE = Path(__file__).resolve().parent
ADMIN_KEY = "whadm_drills_admin_key"
PG = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/13"  # tests use 15, benchmarks 14
AMQP = "amqp://guest:guest@127.0.0.1:5672"
BASE_ENV = {
    "WEBHOOKD_ADMIN_KEY": ADMIN_KEY,
    "WEBHOOKD_ENCRYPTION_KEY": "Zl8ZqL0bY2m7Y3c9d2k1bXhQeVRzV0x6cUhKc0F0b2c=",
    "WEBHOOKD_API_KEY_PEPPER": "drill-pepper",
    "WEBHOOKD_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOKD_LEASE_SECONDS": "5",
    "WEBHOOKD_LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:  # generous: the machine is shared and the process may be busy publishing
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


class Proc:
    """One child process with its output appended to a log file; restartable."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.env = {**os.environ, **BASE_ENV, **env}
        self.log = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_url = ""

    def start(self, timeout: float = 60) -> Proc:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not answers(self.ready_url):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"{self.name} exited with {code}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready in {timeout} s; see {self.log}")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        """SIGKILL: no grace, no cleanup."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and wait (graceful); SIGKILL if it does not exit in ``timeout`` s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


P = TypeVar("P", bound=Proc)


class Server(Proc):
    """``webhookd serve`` on a fixed port (a restart reuses it)."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(name, ["-m", "webhookd", "serve", "--port", str(self.port)], env, logs)
        self.ready_url = f"{self.url}/ready"


class Worker(Proc):
    """``webhookd worker`` (Celery) with its own metrics port, ready when that answers."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        port = free_port()
        super().__init__(
            name, ["-m", "webhookd", "worker"], {**env, "WEBHOOKD_METRICS_PORT": str(port)}, logs
        )
        self.ready_url = f"http://127.0.0.1:{port}/metrics"


class Receiver(Proc):
    """bench/drills/receiver.py; receipts in ``logs/receipts.jsonl`` across restarts."""

    def __init__(self, logs: Path, plan: str = "{}") -> None:
        self.port = free_port()
        self.receipts = logs / "receipts.jsonl"
        args = [str(HERE / "receiver.py"), str(self.port), str(self.receipts), plan]
        super().__init__("receiver", args, {}, logs)
        self.ready_url = f"http://127.0.0.1:{self.port}/"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set_plan(self, plan: dict[str, dict[str, float]]) -> None:
        httpx.put(self.url("/_plan"), json=plan, timeout=5).raise_for_status()


def started(stop: ExitStack, proc: P) -> P:
    """Start ``proc`` and have ``stop`` stop it (SIGTERM) whatever happens."""
    stop.callback(proc.stop)
    proc.start()
    return proc


DB = "WEBHOOKD_DATABASE_URL"


def sqlite_env(db: Path) -> dict[str, str]:
    return {DB: f"sqlite:///{db}"}


# -- services ----------------------------------------------------------------------------------


def run(*args: str, timeout: float = 120) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()[-500:]}")


def psql(sql: str) -> None:
    run("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql)


class DistributedServices:
    """A fresh PostgreSQL database and RabbitMQ vhost (and Celery queue) for one drill."""

    def __init__(self) -> None:
        self.name = f"webhookd_drill_{uuid.uuid4().hex[:8]}"
        self.db_url = f"{PG}/{self.name}"

    def __enter__(self) -> DistributedServices:
        psql(f'CREATE DATABASE "{self.name}"')
        run("rabbitmqctl", "-q", "add_vhost", self.name)
        run("rabbitmqctl", "-q", "set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.name], capture_output=True)
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
             f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'],
            capture_output=True,
        )  # fmt: skip

    @property
    def env(self) -> dict[str, str]:
        return {
            "WEBHOOKD_DATABASE_URL": self.db_url,
            "WEBHOOKD_BROKER_URL": f"{AMQP}/{self.name}",
            "WEBHOOKD_WORKER_QUEUE": self.name,
            "WEBHOOKD_REDIS_URL": REDIS_URL,
        }


def rabbitmq_stop() -> None:
    run("rabbitmqctl", "-q", "stop_app")


def rabbitmq_start() -> None:
    run("rabbitmqctl", "-q", "start_app")
    run("rabbitmqctl", "-q", "await_startup")


def postgres_restart() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart")
