"""Run the fault drills: ``make drills`` (all) or ``make drills ONLY=worker-sigkill``.

    .venv/bin/python bench/drills/run.py [--only NAME ...] [--flood N]

Each drill prints accepted / delivered / duplicates / lost and its own figures; results go
to bench/drills/results.json (one entry per drill, replaced when that drill runs again)
and each run's logs to bench/drills/runs/<time>-<drill>/. Exit status 1 if a drill failed.
Drills stop and start shared services (RabbitMQ, PostgreSQL): not for the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bad_endpoints  # noqa: E402
import faults  # noqa: E402
import isolation  # noqa: E402

RESULTS = HERE / "results.json"
Drill = Callable[[Path], Awaitable[dict[str, object]]]


def drills(flood: int) -> dict[str, Drill]:
    return {
        "embedded-sigkill": faults.embedded_sigkill,
        "worker-sigkill": faults.worker_sigkill,
        "rabbitmq-outage": faults.rabbitmq_outage,
        "postgres-restart": faults.postgres_restart,
        "api-restart": faults.api_restart,
        "receiver-outage": faults.receiver_outage,
        "head-of-line": isolation.head_of_line,
        "tenant-fairness": partial(isolation.tenant_fairness, flood=flood),
        "bad-endpoints": bad_endpoints.bad_endpoints,
    }


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.node()}: {os.cpu_count()} cores, {mem:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def show(result: dict[str, object]) -> None:
    verdict = "PASS" if result["passed"] else "FAIL"
    print(
        f"[{verdict}] {result['drill']}: accepted {result.get('accepted')} events, "
        f"delivered {result.get('delivered')}/{result.get('accepted_deliveries')}, "
        f"duplicates {result.get('duplicates')}, lost {result.get('lost')}, "
        f"dlq {result.get('dlq')}, live at end {result.get('live_at_end')}",
        flush=True,
    )
    for key in ("figures", "publisher"):
        print(f"    {key}: {json.dumps(result.get(key), default=str)}", flush=True)
    for failure in result.get("failures") or []:  # type: ignore[attr-defined]
        print(f"    failed: {failure}", flush=True)


def run_one(name: str, drill: Drill) -> dict[str, object]:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    logs = HERE / "runs" / f"{stamp}-{name}"
    logs.mkdir(parents=True)
    print(f"--- {name} (logs: {logs.relative_to(HERE.parents[1])})", flush=True)
    start = time.monotonic()
    try:
        result = asyncio.run(drill(logs))
    except Exception as exc:  # a drill that cannot finish is a failed drill, with the reason
        traceback.print_exc()
        result = {"drill": name, "passed": False, "failures": [f"{type(exc).__name__}: {exc}"]}
    result["seconds"] = round(time.monotonic() - start, 1)
    result["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result["logs"] = str(logs.relative_to(HERE.parents[1]))
    show(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    names = list(drills(0))
    parser.add_argument("--only", nargs="+", choices=names, help="run only these drills")
    parser.add_argument(
        "--flood", type=int, default=100_000, help="tenant-fairness: tenant A's flood (events)"
    )
    args = parser.parse_args()
    selected = {n: d for n, d in drills(args.flood).items() if not args.only or n in args.only}
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"drills": {}}
    results = []
    for name, drill in selected.items():
        results.append(result := run_one(name, drill))
        saved["drills"][name] = result
        saved["machine"] = machine()
        RESULTS.write_text(json.dumps(saved, indent=2, default=str) + "\n")
    failed = [r["drill"] for r in results if not r["passed"]]
    print(f"=== {len(results) - len(failed)}/{len(results)} drills passed", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
