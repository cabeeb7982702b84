"""`webhookd receiver`: the debugging receiver of the README quickstart checks signatures."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests.fixtures.server import free_port
from webhookd.delivery.signing import generate_secret, signature_headers


def test_receiver_prints_and_verifies(tmp_path) -> None:
    secret = generate_secret()
    port = free_port()
    log = tmp_path / "receiver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "webhookd", "receiver", "--port", str(port), "--secret", secret],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        body = b'{"event_id":"evt_1","event_type":"user.created","payload":{},"created_at":"x"}'
        good = signature_headers(
            secret=secret, msg_id="dlv_1", timestamp=int(time.time()), body=body
        )
        bad = signature_headers(
            secret=generate_secret(), msg_id="dlv_2", timestamp=int(time.time()), body=body
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/webhooks", content=body, headers=good
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert response.status_code == 200
        assert (
            httpx.post(f"http://127.0.0.1:{port}/w", content=body, headers=bad).status_code == 200
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    output = log.read_text()
    assert "webhook-id=dlv_1" in output
    assert "standard-webhooks OK, X-Webhook-Signature OK" in output
    assert "standard-webhooks FAILED" in output and "X-Webhook-Signature FAILED" in output
