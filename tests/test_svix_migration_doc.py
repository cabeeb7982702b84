"""docs/MIGRATING-FROM-SVIX.md's five-minute walk-through runs as printed: its receiver
(verifying with the Svix library) and its changed Svix script, as separate processes against
a running webhookd; only the ports and the admin key file are the test's."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.server import ADMIN_KEY, LiveServer, free_port, running_server

DOC = Path(__file__).resolve().parents[1] / "docs" / "MIGRATING-FROM-SVIX.md"


def walkthrough_blocks() -> list[str]:
    section = DOC.read_text().split("## Five minutes", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return [re.sub(r"^   ", "", block, flags=re.MULTILINE) for block in blocks]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory, "svixdoc") as srv:
        yield srv


def test_the_walkthrough_delivers_a_message_the_svix_receiver_verifies(
    server: LiveServer, tmp_path: Path
) -> None:
    receiver_code, original, changed = walkthrough_blocks()
    assert 'Svix("sk_live_…")' in original and "server_url=" not in original
    after_client = original.index("app = ")
    assert original[after_client:] == changed[changed.index("app = ") :], (
        "the changed script differs from the original in more than the client line"
    )

    port = free_port()
    (tmp_path / "receiver.py").write_text(receiver_code.replace("9000", str(port)))
    (tmp_path / "send.py").write_text(
        changed.replace("http://127.0.0.1:8000", server.url).replace("9000", str(port))
    )
    (tmp_path / "webhookd.db.admin-key").write_text(ADMIN_KEY + "\n")
    log = (tmp_path / "receiver.log").open("w+")
    receiver = subprocess.Popen(  # noqa: S603
        [sys.executable, "receiver.py"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:

        def send() -> list[str]:
            out = subprocess.run(  # noqa: S603
                [sys.executable, "send.py"], cwd=tmp_path, capture_output=True, text=True
            )
            assert out.returncode == 0, out.stderr
            return out.stdout.split()

        app_id, first_endpoint, message_id = send()
        deadline = time.monotonic() + 20
        while "verified" not in (tmp_path / "receiver.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "receiver.log").read_text()
            assert receiver.poll() is None, (tmp_path / "receiver.log").read_text()
            time.sleep(0.1)
        line = next(
            ln for ln in (tmp_path / "receiver.log").read_text().splitlines() if "verified" in ln
        )
        assert line.startswith("verified dlv_")
        assert line.endswith("{'invoice': 42, 'amount': 1900}")

        # Again, as the doc says: same application, a second endpoint, the same message.
        again = send()
        assert again[0] == app_id and again[2] == message_id and again[1] != first_endpoint
        with server.client(Authorization=f"Bearer {ADMIN_KEY}") as svix_api:
            messages = svix_api.get(f"/api/v1/app/{app_id}/msg").json()["data"]
            assert [m["id"] for m in messages] == [message_id]
            attempts = svix_api.get(f"/api/v1/app/{app_id}/attempt/msg/inv-42").json()["data"]
            assert [a["endpointId"] for a in attempts] == [first_endpoint]  # none for the 2nd
        assert (tmp_path / "receiver.log").read_text().count("verified") == 1
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        log.close()
