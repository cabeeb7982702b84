"""``make bench``: webhookd's throughput, latency and resources against ceilings measured in
the same run (docs/BENCHMARKS.md). Each round runs every selected scenario once; the results
file keeps every round and the medians, and the tables of docs/BENCHMARKS.md are regenerated.

    .venv/bin/python -m bench.run [--rounds 3] [--quick] [--only embedded naive.50ms …]
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import ceilings, distributed, embedded, everyday
from bench.config import RunConfig
from bench.procs import BenchError, Procs
from bench.receiver import ReceiverClient
from bench.report import DEFAULT_DOC, render_benchmark, update_doc
from bench.results import DEFAULT_OUTPUT, evaluate, machine, save_section, summarise

Figures = dict[str, dict[str, Any]]
Step = Callable[[RunConfig, ReceiverClient], Figures]


def _embedded_drain(cfg: RunConfig, rx: ReceiverClient) -> Figures:
    ingest, drain = embedded.ingest_and_drain(cfg, rx)
    return {"embedded.ingest": ingest, "embedded.drain": drain}


def _embedded_drain_slow(cfg: RunConfig, rx: ReceiverClient) -> Figures:
    ingest, drain = embedded.ingest_and_drain(cfg, rx, delay=cfg.slow_delay)
    return {"embedded.drain_50ms": {**drain, "ingest_rate": ingest["rate"]}}


def _fanout(cfg: RunConfig, rx: ReceiverClient) -> Figures:
    _, drain = embedded.ingest_and_drain(cfg, rx, endpoints=cfg.fanout)
    return {"embedded.fanout": drain}  # its ingest ran under a cap: no rate to report


STEPS: dict[str, Step] = {
    "ceiling.ingest": lambda cfg, rx: {"ceiling.ingest": ceilings.ingest_ceiling(cfg)},
    "ceiling.delivery": lambda cfg, rx: {
        "ceiling.delivery": ceilings.delivery_ceiling(cfg, rx, delay=0.0)
    },
    "ceiling.delivery_50ms": lambda cfg, rx: {
        "ceiling.delivery_50ms": ceilings.delivery_ceiling(cfg, rx, delay=cfg.slow_delay)
    },
    "naive.instant": lambda cfg, rx: {"naive.instant": ceilings.naive_peer(cfg, rx, delay=0.0)},
    "naive.50ms": lambda cfg, rx: {
        "naive.50ms": ceilings.naive_peer(cfg, rx, delay=cfg.slow_delay)
    },
    "embedded.drain": _embedded_drain,
    "embedded.ingest_schema": lambda cfg, rx: {
        "embedded.ingest_schema": embedded.ingest_with_schema(cfg, rx)
    },
    "embedded.drain_50ms": _embedded_drain_slow,
    "embedded.fanout": _fanout,
    "embedded.mixed": lambda cfg, rx: {"embedded.mixed": embedded.mixed(cfg, rx)},
    "embedded.latency": lambda cfg, rx: {"embedded.latency": embedded.latency(cfg, rx)},
    "distributed": distributed.distributed_round,
    "everyday.sqlite": lambda cfg, rx: {"everyday.sqlite": everyday.everyday(cfg, rx, "sqlite")},
    "everyday.postgres": lambda cfg, rx: {
        "everyday.postgres": everyday.everyday(cfg, rx, "postgres")
    },
    "everyday.floor": lambda cfg, rx: {"everyday.floor": everyday.floor(cfg, rx)},
    "everyday.idle": lambda cfg, rx: {"everyday.idle": everyday.idle(cfg, rx)},
}


def selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(STEPS)
    chosen = [s for s in STEPS if any(s == o or s.startswith(o + ".") for o in only)]
    unknown = [o for o in only if not any(s == o or s.startswith(o + ".") for s in STEPS)]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {list(STEPS)}")
    return chosen


def run(cfg: RunConfig, steps: list[str]) -> tuple[dict[str, Any], list[str]]:
    raw: dict[str, list[dict[str, Any]]] = {}
    errors: list[str] = []
    plan = [(r, s) for r in range(cfg.rounds) for s in steps]
    with Procs() as procs, tqdm(plan, unit="scenario", dynamic_ncols=True) as bar:
        receiver = ReceiverClient(procs)
        for round_no, step in bar:
            bar.set_description(f"round {round_no + 1}/{cfg.rounds} {step}")
            try:
                figures = STEPS[step](cfg, receiver)
            except BenchError as exc:
                errors.append(f"round {round_no + 1} {step}: {exc}")
                tqdm.write(f"FAILED {step}: {exc}")
                continue
            except Exception:  # a bug or a broken service: say where, carry on with the rest
                errors.append(f"round {round_no + 1} {step}: {traceback.format_exc()}")
                tqdm.write(f"FAILED {step}:\n{traceback.format_exc()}")
                continue
            for name, values in figures.items():
                raw.setdefault(name, []).append({"round": round_no + 1, **values})
    scenarios = summarise(raw)
    targets, info = evaluate(scenarios)
    return {
        "machine": machine(),
        "config": cfg.as_dict(),
        "scenarios": scenarios,
        "targets": targets,
        "ratios": info,
        "errors": errors,
    }, errors


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick: 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a check, not figures")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help=f"of {list(STEPS)}")
    parser.add_argument("--events", type=int, help="cap on the events of each backlog")
    parser.add_argument("--ingest-seconds", type=float, help="cap on each ingest run")
    parser.add_argument("--ceiling-requests", type=int, help="POSTs of the delivery ceiling")
    parser.add_argument("--python-loadgen", action="store_true", help="aiohttp instead of wrk")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="doc to regenerate")
    parser.add_argument("--no-doc", action="store_true", help="do not touch the doc")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    cfg = RunConfig.quick() if args.quick else RunConfig()
    cfg.rounds = args.rounds or cfg.rounds
    for field in ("events", "ingest_seconds", "ceiling_requests"):
        if getattr(args, field) is not None:
            setattr(cfg, field, getattr(args, field))
    cfg.python_loadgen = args.python_loadgen
    data, errors = run(cfg, selected(args.only))
    data["quick"] = args.quick
    save_section(args.output, "benchmark", data)
    if not args.no_doc:
        update_doc(args.doc, args.output)
    print(render_benchmark(data))
    if errors:
        print(f"\n{len(errors)} scenario run(s) FAILED:", *errors, sep="\n", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
