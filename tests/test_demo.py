"""Issue 13: `webhookd demo` puts a first signed webhook on screen, verified as a receiver
would, with the curl commands that do the same: with a server of its own, or with a
running one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.server import ADMIN_KEY, running_server

WEBHOOKD = str(Path(sys.executable).with_name("webhookd"))


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBHOOKD_")}
    env["WEBHOOKD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.db'}"
    return subprocess.run(
        [WEBHOOKD, "demo", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _delivered_and_verified(output: str) -> None:
    assert "Delivered: POST http://127.0.0.1:" in output
    assert "webhook-id: dlv_" in output and '"order_id": "ord_1001"' in output
    assert "Signature verified" in output
    assert "curl -X POST" in output and "/api/v1/events" in output


def test_the_demo_starts_its_own_server_when_none_runs(tmp_path) -> None:
    result = _demo(tmp_path, "--url", "http://127.0.0.1:9")  # nothing listens there
    assert result.returncode == 1 and "no webhookd answers" in result.stderr
    result = _demo(tmp_path)  # no server given: its own
    assert result.returncode == 0, result.stderr
    assert "Starting a webhookd of its own" in result.stdout
    _delivered_and_verified(result.stdout)


@pytest.mark.parametrize("loopback_allowed", [True, False])
def test_the_demo_uses_a_running_server(tmp_path_factory, tmp_path, loopback_allowed) -> None:
    with running_server(
        tmp_path_factory,
        allow_private_targets=False,
        allowed_networks="127.0.0.1/32" if loopback_allowed else "",
    ) as server:
        result = _demo(tmp_path, "--url", server.url, "--admin-key", ADMIN_KEY)
    assert result.returncode == 0, result.stderr
    assert f"Using the webhookd at {server.url}" in result.stdout
    if not loopback_allowed:  # its SSRF guard refuses the listener: the demo says so
        assert "WEBHOOKD_ALLOWED_NETWORKS=127.0.0.1/32" in result.stdout
        assert "Starting a webhookd of its own" in result.stdout
    _delivered_and_verified(result.stdout)
