"""Regenerate the tables of docs/BENCHMARKS.md from bench/results/latest.json.

Only the text between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->`` markers
(NAME: machine, targets, scenarios, scale) is replaced; the rest of the doc is hand-written.

    .venv/bin/python -m bench.report [--results bench/results/latest.json] [--doc …]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from bench.results import DEFAULT_OUTPUT, ROOT, load

DEFAULT_DOC = ROOT / "docs" / "BENCHMARKS.md"

DELIVERIES = ("rate", "deliveries/s", ",.0f")
BACKLOG = ("backlog", "backlog", ",.0f")
P50, P95, P99 = (
    ("p50_ms", "p50 ms", ".1f"),
    ("p95_ms", "p95 ms", ".1f"),
    ("p99_ms", "p99 ms", ".1f"),
)


def _ingest(unit: str) -> list[tuple[str, str, str]]:
    return [("rate", unit, ",.0f"), P50, P99]


# issue 18 (bench/everyday.py): server CPU time per delivered event, not a throughput
EVERYDAY = [
    ("ms_per_event_500", "ms CPU/event at 500/s", ".2f"),
    ("ms_per_event_100", "ms CPU/event at 100/s", ".2f"),
    ("p50_ms_500", "ms p50 latency at 500/s", ".1f"),
]

# scenario: (label, [(figure, header, format)]), in the order of the table
COLUMNS: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "ceiling.delivery": ("(a) bare aiohttp client, instant receiver", [DELIVERIES]),
    "ceiling.delivery_50ms": ("(a) bare aiohttp client, 50 ms receiver", [DELIVERIES]),
    "ceiling.ingest": ("(b) no-database FastAPI ingest", _ingest("req/s")),
    "naive.instant": ("(c) naive Celery peer, instant receiver", [DELIVERIES]),
    "naive.50ms": ("(c) naive Celery peer, 50 ms receiver", [DELIVERIES]),
    "embedded.ingest": ("embedded ingest (workers off)", _ingest("events/s")),
    "embedded.drain": ("embedded drain, instant receiver", [DELIVERIES, BACKLOG]),
    "embedded.drain_50ms": ("embedded drain, 50 ms receiver", [DELIVERIES, BACKLOG]),
    "embedded.fanout": ("embedded fan-out, 1 event → 10 endpoints", [DELIVERIES, BACKLOG]),
    "embedded.mixed": (
        "embedded mixed: publishing while delivering",
        [("events_in", "events/s in", ",.0f"), ("deliveries_out", "deliveries/s out", ",.0f")],
    ),
    "embedded.latency": (
        "embedded publish → receipt at 500 events/s",
        [
            P50,
            P95,
            P99,
            ("accepted_rate", "events/s accepted", ",.0f"),
            ("after_202_p50_ms", "ms p50 from the 202 to the receiver", ".1f"),
        ],
    ),
    "distributed.ingest": ("PostgreSQL ingest (API + Redis + broker)", _ingest("events/s")),
    "distributed.drain_1w": ("distributed drain, 1 worker, instant", [DELIVERIES]),
    "distributed.drain_2w": ("distributed drain, 2 workers, instant", [DELIVERIES]),
    "distributed.drain_1w_50ms": ("distributed drain, 1 worker, 50 ms", [DELIVERIES]),
    "distributed.drain_2w_50ms": ("distributed drain, 2 workers, 50 ms", [DELIVERIES]),
    "everyday.sqlite": ("everyday load, open loop, SQLite", EVERYDAY),
    "everyday.postgres": (
        "everyday load, open loop, PostgreSQL",
        [*EVERYDAY, ("pg_ms_per_event_500", "ms PostgreSQL backends' CPU/event at 500/s", ".2f")],
    ),
    "everyday.floor": ("everyday load, open loop, relay floor (no database)", EVERYDAY),
    "everyday.idle": (
        "idle server, % of a core",
        [
            ("sqlite_cpu_percent", "% SQLite", ".2f"),
            ("postgres_cpu_percent", "% PostgreSQL", ".2f"),
        ],
    ),
}


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def render_machine(data: dict[str, Any]) -> str:
    m = data["machine"]
    v = m["versions"]
    dirty = " (with local changes)" if m["git_dirty"] else ""
    quick = " — **quick run: a check, not figures**" if data.get("quick") else ""
    keys = ["webhookd", "fastapi", "uvicorn", "uvloop", "sqlalchemy", "aiosqlite", "asyncpg",
            "aiohttp", "celery", "orjson", "wrk"]  # fmt: skip
    return "\n".join(
        [
            f"- CPU: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; {m['os']}",
            f"- Python {m['python']}; " + ", ".join(f"{k} {v.get(k, '?')}" for k in keys),
            f"- git commit `{m['git_commit'][:12]}`{dirty}, {m['date']}{quick}",
            f"- rounds: {data['config']['rounds']}; every figure is the median of the rounds",
        ]
    )


def render_targets(data: dict[str, Any]) -> str:
    rows = ["| target (issue 5) | measured | target | met |", "|---|---|---|---|"]
    for t in data["targets"]:
        met = {True: "**met**", False: "**not met**", None: "not measured"}[t["met"]]
        spec = ".2f" if t["target"] < 10 else ".1f"
        rounds = ", ".join(format(r, ".2f") for r in t["per_round"])
        measured = _fmt(t["measured"], spec) + (f" (rounds: {rounds})" if rounds else "")
        rows.append(f"| {t['what']} | {measured} | {t['op']} {t['target']:g} | {met} |")
    rows += ["", "| ratio (no target) | median ratio |", "|---|---|"]
    rows += [f"| {r['what']} | {_fmt(r['ratio'], '.2f')} |" for r in data["ratios"]]
    return "\n".join(rows)


def render_scenarios(data: dict[str, Any]) -> str:
    rows = [
        "| scenario | median | rounds | peak RSS MB | CPU s | CPU % |",
        "|---|---|---|---|---|---|",
    ]
    scenarios = data["scenarios"]
    for name, (label, cols) in COLUMNS.items():
        if name not in scenarios:
            continue
        med = scenarios[name]["median"]
        main = "; ".join(f"{_fmt(med.get(k), spec)} {head}" for k, head, spec in cols)
        key, _, spec = cols[0]
        per_round = " / ".join(_fmt(r.get(key), spec) for r in scenarios[name]["rounds"])
        res = med.get("resources", {})
        rows.append(
            f"| {label} | {main} | {per_round} | {_fmt(res.get('peak_rss_mb'), '.0f')} "
            f"| {_fmt(res.get('cpu_seconds'), '.1f')} | {_fmt(res.get('cpu_percent'), '.0f')} |"
        )
    if data.get("errors"):
        rows += ["", f"**{len(data['errors'])} scenario run(s) failed** in this run:"]
        rows += [f"- {e.splitlines()[0][:200]}" for e in data["errors"]]
    return "\n".join(rows)


def render_benchmark(data: dict[str, Any]) -> str:
    return "\n\n".join([render_machine(data), render_targets(data), render_scenarios(data)])


def render_scale(data: dict[str, Any]) -> str:
    rows = [
        "| backend | backlog | µs per delivery (overall) | first 10 % | last 10 % "
        "| last ÷ first | peak RSS MB | backlog insert s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in data["runs"]:
        m = run["median"]
        rows.append(
            f"| {run['backend']} | {run['size']:,} | {m['us_per_delivery']:.0f} "
            f"| {m['first_10_us']:.0f} | {m['last_10_us']:.0f} | {m['last_vs_first']:.2f} "
            f"| {m['peak_rss_mb']:.0f} | {m['insert_seconds']:.1f} |"
        )
    rows += ["", "| target (issue 5) | measured | met |", "|---|---|---|"]
    for t in data["targets"]:
        met = {True: "**met**", False: "**not met**", None: "not measured"}[t["met"]]
        rows.append(f"| {t['what']} | {t['measured']} | {met} |")
    m = data["machine"]
    rows += ["", f"Machine: {m['cpu']}, {m['cores']} cores; commit `{m['git_commit'][:12]}`, "
             f"{m['date']}; rounds per size: {data['rounds']}."]  # fmt: skip
    return "\n".join(rows)


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- bench:{name}:start -->\n).*?(\n<!-- bench:{name}:end -->)", re.DOTALL
    )
    if not pattern.search(text):
        raise SystemExit(f"markers <!-- bench:{name}:start/end --> not found in the doc")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def update_doc(doc: Path, results: Path) -> None:
    data = load(results)
    text = doc.read_text()
    if "benchmark" in data:
        bench = data["benchmark"]
        text = replace_block(text, "machine", render_machine(bench))
        text = replace_block(text, "targets", render_targets(bench))
        text = replace_block(text, "scenarios", render_scenarios(bench))
    if "scale" in data:
        text = replace_block(text, "scale", render_scale(data["scale"]))
    doc.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description="Regenerate the tables of docs/BENCHMARKS.md")
    parser.add_argument("--results", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    args = parser.parse_args()
    update_doc(args.doc, args.results)


if __name__ == "__main__":
    main()
