"""`python -m bench.capacity` in miniature (issue 18, docs/SCALING.md): one round with tiny
backlogs on PostgreSQL + RabbitMQ + Redis, so that the harness cannot rot. It asserts what
was counted (every claimed row recorded, every message and CPU figure present, the
prediction computed), never a speed: the machine is shared."""

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


def test_a_small_capacity_run_measures_every_figure_of_the_model(tmp_path: Path) -> None:
    for service in ("postgresql", "redis", "rabbitmq"):
        require_service(service)
    for tool in ("rabbitmqctl", "wrk"):
        if shutil.which(tool) is None:
            message = f"{tool} is not on PATH"
            if services_required():
                pytest.fail(message + " and WEBHOOKD_REQUIRE_SERVICES=1", pytrace=False)
            pytest.skip(message)
    out = tmp_path / "capacity.json"
    args = ["--rounds", "1", "--events", "300", "--claim-rows", "400", "--workers", "1", "2"]
    run = subprocess.run(
        [sys.executable, "-m", "bench.capacity", *args, "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    median = result["median"]
    for name in ("claims_1p_b100", "claims_2p_b100", "claims_1p_b20", "claims_2p_b20"):
        assert median[name]["rows"] == 400
        assert median[name]["pg_cpu_us_per_delivery"] >= 0  # 400 rows: under a clock tick
    for name in ("costs", "scaling_1w", "scaling_2w"):
        cycle = median[name]
        assert cycle["backlog"] >= 300 and cycle["duplicates"] == 0
        assert cycle["messages"] >= 1 and cycle["messages_left_after_drain"] == 0
        assert cycle["worker_cpu_us_per_delivery"] > 0 and cycle["api_cpu_us_per_publish"] > 0
    assert set(result["prediction"]) == {"1w", "2w"}
    report = subprocess.run(
        [sys.executable, "-m", "bench.capacity", "--report", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "| 2w |" in report.stdout
