"""`make soak` in miniature (issue 18): 30 s at 50 events/s on PostgreSQL + RabbitMQ +
Redis with one SIGKILL, judged like the 20-minute run, and its plot drawn.

What is asserted is the count: nothing lost, nothing live, no arrival after a 2xx that a
kill does not explain, the RSS judged, the report and the PNG written. Its latency verdict
is computed but not asserted, as tests/test_bench_smoke.py asserts no speed: on the shared
2-core machine (load 13) one worker restarting for 16 s put a few seconds of a 40 s run over
1 s. The full soak (bench/soak.py, docs/RELIABILITY.md "Soak") is not part of the suite.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.services import require_service, services_required

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_soak_with_one_kill_passes_and_writes_its_plot(tmp_path: Path) -> None:
    for service in ("postgresql", "redis", "rabbitmq"):
        require_service(service)
    for tool in ("rabbitmqctl", "psql"):  # the drills' stack makes a vhost and a database
        if shutil.which(tool) is None:
            message = f"{tool} is not on PATH"
            if services_required():
                pytest.fail(message + " and WEBHOOKD_REQUIRE_SERVICES=1", pytrace=False)
            pytest.skip(message)
    out, plot = tmp_path / "soak.json", tmp_path / "soak.png"
    args = ["--minutes", "0.5", "--rate", "50", "--kill-every", "15"]
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", *args, "--output", str(out), "--plot", str(plot)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    timing = [f for f in result["failures"] if f.startswith("p99 over")]
    assert set(result["failures"]) == set(timing), (result["failures"], run.stdout[-3000:])
    assert run.returncode == (1 if timing else 0)
    assert len(result["kills"]) == 1
    counts = result["counts"]
    assert result["publisher"]["accepted"] == result["events_offered"] > 0
    assert result["publisher"]["gave_up"] == 0
    assert counts["lost"] == 0 and counts["live_at_end"] == 0
    assert counts["delivered"] + counts["dlq"] == counts["accepted_deliveries"]
    assert counts["dlq"] > 0  # the failing endpoints were dead-lettered within the run
    assert result["redeliveries"]["violations"] == []
    assert any(s["judged"] for s in result["rss"]["series"].values())
    assert result["latency"]["seconds_judged"] > 0
    assert "| check | limit | measured | result |" in result["report"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
