"""The benchmark harness, tiny: it must count correctly and write its results. No speed is
asserted here (targets live in the benchmark itself, docs/BENCHMARKS.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bench import run
from bench.embedded import EmbeddedSite
from bench.loadgen import publish
from bench.procs import Procs
from bench.receiver import ReceiverClient
from bench.report import render_benchmark, update_doc

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_every_accepted_event_arrives_once_per_endpoint_signed(tmp_path: Path) -> None:
    event_ids = [f"smoke-{n}" for n in range(200)]
    with Procs() as procs:
        receiver = ReceiverClient(procs)
        site = EmbeddedSite(procs, tmp_path, receiver, endpoints=2)
        site.restart(workers=True)
        receiver.reset(secret=site.tenant.secret, sample=10, detail=True)
        accepted = publish(site.server.url, site.tenant.api_key, event_ids)
        receiver.wait_for(2 * len(accepted), timeout=45, what="smoke deliveries")
        stats = receiver.stats()
        arrivals = receiver.arrivals()
    assert sorted(accepted) == sorted(event_ids)
    counts = {(path, event): n for path, event, n in arrivals["per_endpoint"]}
    assert counts == {(f"/hook/{k}", e): 1 for k in range(2) for e in event_ids}
    assert stats["duplicates"] == 0
    assert stats["sig_failed"] == 0, stats["sig_errors"]
    assert stats["sig_checked"] == 40  # one in 10 of 400


def test_harness_writes_results_and_regenerates_the_doc(tmp_path: Path) -> None:
    out, doc = tmp_path / "latest.json", tmp_path / "BENCHMARKS.md"
    shutil.copy(ROOT / "docs" / "BENCHMARKS.md", doc)
    code = run.main(
        ["--quick", "--rounds", "1", "--only", "ceiling.delivery", "embedded.drain"]
        + ["--events", "200", "--ingest-seconds", "1", "--ceiling-requests", "500"]
        + ["--output", str(out), "--doc", str(doc)]
    )
    assert code == 0
    data = json.loads(out.read_text())["benchmark"]
    assert data["errors"] == []
    assert {"ceiling.delivery", "embedded.ingest", "embedded.drain"} <= set(data["scenarios"])
    (drain,) = data["scenarios"]["embedded.drain"]["rounds"]
    assert drain["backlog"] > 0 and drain["duplicates"] == 0
    assert data["scenarios"]["ceiling.delivery"]["median"]["rate"] > 0
    assert data["machine"]["cores"] and data["machine"]["python"]
    delivery = next(t for t in data["targets"] if t["key"] == "embedded_delivery")
    assert delivery["measured"] is not None and delivery["met"] in (True, False)
    assert "embedded drain, instant receiver" in render_benchmark(data)
    assert "embedded drain, instant receiver" in doc.read_text()
    update_doc(doc, out)  # idempotent: markers survive a regeneration
    assert doc.read_text().count("<!-- bench:scenarios:start -->") == 1


def test_everyday_scenario_measures_cpu_per_event_and_idle(tmp_path: Path) -> None:
    """bench/everyday.py in its quick sizes: both databases and the relay floor at both rates
    and idle produce their figures, targets and ratios (no speed asserted)."""
    out, doc = tmp_path / "latest.json", tmp_path / "BENCHMARKS.md"
    shutil.copy(ROOT / "docs" / "BENCHMARKS.md", doc)
    code = run.main(["--quick", "--only", "everyday", "--output", str(out), "--doc", str(doc)])
    assert code == 0
    data = json.loads(out.read_text())["benchmark"]
    assert data["errors"] == []
    for db in ("sqlite", "postgres", "floor"):
        (figures,) = data["scenarios"][f"everyday.{db}"]["rounds"]
        for rate in ("100", "500"):
            assert figures[f"ms_per_event_{rate}"] > 0
            assert figures[f"publish_failures_{rate}"] == 0
            assert figures[f"delivered_rate_{rate}"] > 0  # counted in the window
            assert figures[f"p50_ms_{rate}"] > 0
        assert figures["duplicates"] == 0
    assert data["scenarios"]["everyday.postgres"]["rounds"][0]["pg_ms_per_event_500"] > 0
    idle = data["scenarios"]["everyday.idle"]["median"]
    assert 0 <= idle["sqlite_cpu_percent"] < 100 and 0 <= idle["postgres_cpu_percent"] < 100
    keys = {t["key"]: t for t in data["targets"]}
    for key in ("everyday_sqlite_500", "everyday_postgres_100", "idle_sqlite"):
        assert keys[key]["measured"] is not None and keys[key]["met"] in (True, False)
    ratios = {r["key"]: r["ratio"] for r in data["ratios"]}
    assert ratios["everyday_sqlite_500_vs_floor"] > 0
    assert ratios["everyday_postgres_100_vs_floor"] > 0
    assert "everyday load, open loop, PostgreSQL" in doc.read_text()
    assert "relay floor (no database)" in doc.read_text()


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_pages_benchmark_runs_on_a_tiny_seed(tmp_path: Path, db: str) -> None:
    """bench/pages.py end to end with 2,000 events: every page answers (no timing asserted)."""
    from bench import pages

    out = tmp_path / f"pages-{db}.json"
    code = pages.main(["--db", db, "--events", "2000", "--repeat", "2", "--output", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["rows"]["event"] == 2000 and data["rows"]["dead_letter"] > 0
    names = [row["page"] for row in data["pages"]]
    assert "event log, 10 next links deep" in names and "portal delivery detail" in names
    assert all(row["median_ms"] > 0 for row in data["pages"])
    assert "| event detail |" in pages.render(data)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_publish_batch_benchmark_stores_every_event_it_counts(db: str) -> None:
    """bench/publish_batch.py: every publish it times is stored with its delivery."""
    from bench import publish_batch

    result = publish_batch.main(["--db", db, "--sizes", "1,4", "--batches", "5"])
    assert result["deliveries_stored"] == 2 * 5 * (1 + 4)  # warm-up and measured
    assert [row["size"] for row in result["batches"]] == [1, 4]
    assert all(row["cpu_ms"] > 0 for row in result["batches"])
