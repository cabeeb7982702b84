"""Issue 13: an operator gets a sentence, not a traceback. Every start-up failure of
`serve`, `worker` and `migrate` prints one line and exits non-zero, before anything has
started. The real commands run, as an operator would run them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.server import free_port
from tests.fixtures.services import BROKER_URL, POSTGRES_URL, require_service

WEBHOOKD = str(Path(sys.executable).with_name("webhookd"))


def _run(
    tmp_path: Path, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOKD_", "DATABASE_URL"))
    }
    environment |= {"WEBHOOKD_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **env}
    return subprocess.run(
        [WEBHOOKD, *args],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str], code: int, *expected: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("webhookd: ")
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["worker"]])
def test_an_unsupported_database_is_named(tmp_path, command) -> None:
    result = _run(tmp_path, *command, WEBHOOKD_DATABASE_URL="mysql://root@localhost/db")
    _one_line(result, 2, "WEBHOOKD_DATABASE_URL", "unsupported database 'mysql'")


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["worker"]])
def test_an_invalid_setting_is_named_with_its_value(tmp_path, command) -> None:
    result = _run(tmp_path, *command, WEBHOOKD_MAX_ATTEMPTS="abc")
    _one_line(result, 2, "WEBHOOKD_MAX_ATTEMPTS='abc'", "integer")


@pytest.mark.parametrize("command", [["serve"], ["migrate"]])
def test_an_unreachable_database_is_said_without_its_password(tmp_path, command) -> None:
    url = f"postgresql://webhookd:s3cret@127.0.0.1:{free_port()}/nowhere"
    result = _run(tmp_path, *command, WEBHOOKD_DATABASE_URL=url)
    _one_line(result, 1, "cannot reach the database at postgresql", "127.0.0.1")
    assert "s3cret" not in result.stderr


def test_a_port_in_use_is_said_before_anything_starts(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(tmp_path, "serve", "--port", str(port))
    _one_line(result, 1, f"port {port} on 127.0.0.1 is already in use")
    assert not (tmp_path / "cli.db").exists()  # not even migrated


def test_a_worker_whose_metrics_port_is_taken_stops(tmp_path) -> None:
    require_service("postgresql")
    require_service("rabbitmq")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(
            tmp_path,
            "worker",
            WEBHOOKD_DATABASE_URL=POSTGRES_URL,
            WEBHOOKD_BROKER_URL=BROKER_URL,
            WEBHOOKD_METRICS_PORT=str(port),
        )
    _one_line(result, 1, f"metrics port {port} on 127.0.0.1 is already in use")


def test_a_worker_without_a_broker_says_which_setting(tmp_path) -> None:
    _one_line(_run(tmp_path, "worker"), 2, "WEBHOOKD_BROKER_URL")


def test_a_worker_whose_broker_is_down_says_so(tmp_path) -> None:
    broker = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    result = _run(tmp_path, "worker", WEBHOOKD_BROKER_URL=broker, WEBHOOKD_METRICS_PORT="0")
    _one_line(result, 1, "cannot reach the broker at amqp://guest:***@127.0.0.1")


def test_production_without_its_secrets_is_one_line(tmp_path) -> None:
    result = _run(tmp_path, "serve", "--port", str(free_port()), WEBHOOKD_ENVIRONMENT="production")
    _one_line(result, 1, "WEBHOOKD_ADMIN_KEY must be set")
