"""Results: every round's raw figures, their medians, the ratios to the ceilings of the same
run and the issue-5 targets, with a description of the machine; one JSON file
(``bench/results/latest.json``) holding a ``benchmark`` and a ``scale`` section."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "latest.json"


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every numeric figure across rounds (nested dicts included)."""
    out: dict[str, Any] = {}
    for key in rounds[0] if rounds else ():
        values = [r[key] for r in rounds if key in r]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = statistics.median(values)
        elif all(isinstance(v, dict) for v in values):
            out[key] = medians(values)
    return out


def summarise(raw: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {name: {"rounds": rounds, "median": medians(rounds)} for name, rounds in raw.items()}


# (key, what, numerator scenario, denominator scenario or None, figure, op, target)
TARGETS = [
    ("embedded_delivery", "embedded drain ÷ delivery ceiling (a)", "embedded.drain",
     "ceiling.delivery", "rate", ">=", 0.40),
    ("embedded_ingest", "embedded ingest ÷ ingest ceiling (b)", "embedded.ingest",
     "ceiling.ingest", "rate", ">=", 0.60),
    ("postgres_ingest", "PostgreSQL ingest ÷ ingest ceiling (b)", "distributed.ingest",
     "ceiling.ingest", "rate", ">=", 0.70),
    ("distributed_vs_naive", "distributed 2 workers ÷ naive Celery peer (instant)",
     "distributed.drain_2w", "naive.instant", "rate", ">=", 2.0),
    ("distributed_vs_naive_50ms", "distributed 2 workers ÷ naive Celery peer (50 ms)",
     "distributed.drain_2w_50ms", "naive.50ms", "rate", ">=", 20.0),
    ("latency_p50", "e2e latency p50 at 500 events/s (ms)", "embedded.latency", None,
     "p50_ms", "<=", 15.0),
    ("latency_p99", "e2e latency p99 at 500 events/s (ms)", "embedded.latency", None,
     "p99_ms", "<=", 100.0),
    # issue 18: everyday load, open loop (bench/everyday.py); CPU time, not throughput
    ("everyday_sqlite_500", "server CPU ms per delivered event at 500 events/s, SQLite",
     "everyday.sqlite", None, "ms_per_event_500", "<=", 0.5),
    ("everyday_sqlite_100", "server CPU ms per delivered event at 100 events/s, SQLite",
     "everyday.sqlite", None, "ms_per_event_100", "<=", 1.0),
    ("everyday_postgres_500", "server CPU ms per delivered event at 500 events/s, PostgreSQL",
     "everyday.postgres", None, "ms_per_event_500", "<=", 0.5),
    ("everyday_postgres_100", "server CPU ms per delivered event at 100 events/s, PostgreSQL",
     "everyday.postgres", None, "ms_per_event_100", "<=", 1.0),
    ("everyday_latency_sqlite", "everyday e2e latency p50 at 500 events/s, SQLite (ms)",
     "everyday.sqlite", None, "p50_ms_500", "<=", 15.0),
    ("everyday_latency_postgres", "everyday e2e latency p50 at 500 events/s, PostgreSQL (ms)",
     "everyday.postgres", None, "p50_ms_500", "<=", 15.0),
    ("idle_sqlite", "server CPU when idle, SQLite (% of a core)", "everyday.idle", None,
     "sqlite_cpu_percent", "<=", 1.0),
    ("idle_postgres", "server CPU when idle, PostgreSQL (% of a core)", "everyday.idle", None,
     "postgres_cpu_percent", "<=", 1.0),
]  # fmt: skip

# Ratios reported without a target, for reading the figures: (key, what, numerator
# scenario, denominator scenario[, figure: "rate" unless given]).
INFO_RATIOS: list[tuple[str, ...]] = [
    ("embedded_ingest_schema", "embedded ingest, JSON Schema on the type ÷ without",
     "embedded.ingest_schema", "embedded.ingest"),
    ("embedded_delivery_50ms", "embedded drain, 50 ms receiver ÷ delivery ceiling at 50 ms",
     "embedded.drain_50ms", "ceiling.delivery_50ms"),
    ("embedded_vs_naive_50ms", "embedded drain, 50 ms receiver ÷ naive peer at 50 ms",
     "embedded.drain_50ms", "naive.50ms"),
    ("distributed_1w_vs_naive", "distributed 1 worker ÷ naive peer (instant)",
     "distributed.drain_1w", "naive.instant"),
    ("distributed_1w_vs_naive_50ms", "distributed 1 worker ÷ naive peer (50 ms)",
     "distributed.drain_1w_50ms", "naive.50ms"),
    ("distributed_2w_vs_1w", "distributed 2 workers ÷ 1 worker (instant)",
     "distributed.drain_2w", "distributed.drain_1w"),
    # issue 18: webhookd's CPU per delivered event over the relay floor's (the same HTTP in
    # and out without a database: bench/relay_app.py), the same rate, the same run
    ("everyday_sqlite_500_vs_floor", "CPU per delivered event at 500 events/s, SQLite ÷ floor",
     "everyday.sqlite", "everyday.floor", "ms_per_event_500"),
    ("everyday_sqlite_100_vs_floor", "CPU per delivered event at 100 events/s, SQLite ÷ floor",
     "everyday.sqlite", "everyday.floor", "ms_per_event_100"),
    ("everyday_postgres_500_vs_floor",
     "CPU per delivered event at 500 events/s, PostgreSQL ÷ floor",
     "everyday.postgres", "everyday.floor", "ms_per_event_500"),
    ("everyday_postgres_100_vs_floor",
     "CPU per delivered event at 100 events/s, PostgreSQL ÷ floor",
     "everyday.postgres", "everyday.floor", "ms_per_event_100"),
]  # fmt: skip

RSS_LIMIT_MB = 300.0


def _figure(scenarios: dict[str, Any], name: str | None, key: str) -> float | None:
    if name is None or name not in scenarios:
        return None
    value = scenarios[name]["median"].get(key)
    return float(value) if value is not None else None


def _round_ratios(scenarios: dict[str, Any], num: str, den: str, key: str) -> list[float]:
    """The ratio in each round where both scenarios produced the figure."""
    if num not in scenarios or den not in scenarios:
        return []
    base = {r["round"]: r.get(key) for r in scenarios[den]["rounds"]}
    return [
        r[key] / base[r["round"]]
        for r in scenarios[num]["rounds"]
        if base.get(r["round"]) and r.get(key) is not None
    ]


def _round_values(scenarios: dict[str, Any], name: str, key: str) -> list[float]:
    """The figure in each round that produced it (targets on one scenario's figure)."""
    if name not in scenarios:
        return []
    return [r[key] for r in scenarios[name]["rounds"] if r.get(key) is not None]


def evaluate(scenarios: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Targets (measured, target, met) and informational ratios; ratios are the median of
    webhookd's rounds over the median of the ceiling's rounds in the same run."""
    targets: list[dict[str, Any]] = []
    for key, what, num, den, figure, op, target in TARGETS:
        value = _figure(scenarios, num, figure)
        if den is not None:
            base = _figure(scenarios, den, figure)
            value = value / base if value is not None and base else None
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        targets.append(
            {
                "key": key,
                "what": what,
                "measured": value,
                "op": op,
                "target": target,
                "met": met,
                "per_round": _round_ratios(scenarios, num, den, figure)
                if den
                else _round_values(scenarios, num, figure),
            }
        )
    peaks = [
        (name, s["median"]["resources"]["peak_rss_mb"])
        for name, s in scenarios.items()
        if name.startswith("embedded.") and "resources" in s["median"]
    ]
    if peaks:
        name, peak = max(peaks, key=lambda p: p[1])
        targets.append(
            {
                "key": "embedded_rss",
                "what": f"peak RSS of the webhookd process, embedded (MB; highest: {name})",
                "measured": peak,
                "op": "<=",
                "target": RSS_LIMIT_MB,
                "met": peak <= RSS_LIMIT_MB,
                "per_round": [],
            }
        )
    info = []
    for key, what, num, den, *figure in INFO_RATIOS:
        name = figure[0] if figure else "rate"
        a, b = _figure(scenarios, num, name), _figure(scenarios, den, name)
        info.append({"key": key, "what": what, "ratio": a / b if a and b else None})
    return targets, info


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match.group(1).strip() if match else cpu
    names = ["webhookd", "wrk"]
    requires = importlib.metadata.requires("webhookd") or []
    # The server's own dependencies (its "server" extra) and the base ones; not dev or docs.
    names += [
        re.split(r"[\s\[<>=;!~]", r, maxsplit=1)[0]
        for r in requires
        if "extra" not in r or 'extra == "server"' in r
    ]
    names += ["uvloop", "httptools", "psutil", "tqdm", "httpx", "standardwebhooks"]
    versions: dict[str, str] = {}
    for name in dict.fromkeys(names):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = _tool_version(name)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _tool_version(name: str) -> str:
    try:
        done = subprocess.run([name, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    words = (done.stdout or done.stderr).split()  # "wrk debian/4.1.0-3+b2 [epoll] …"
    return words[1] if len(words) > 1 and words[0] == name else " ".join(words[:2]) or "?"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save_section(path: Path, section: str, data: dict[str, Any]) -> None:
    """Replace one section (``benchmark`` or ``scale``) of the results file, keep the other."""
    content = load(path)
    content[section] = data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=1, sort_keys=False) + "\n")
