"""The figures of the capacity model (docs/SCALING.md) and a check of its first step.

Three parts, each on fresh PostgreSQL databases and RabbitMQ vhosts (``bench/services.py``):

- **claims**: webhookd's own claim and record (``DeliveryStore.claim_due`` and
  ``record_outcomes`` of the PostgreSQL store, as the engine calls them: batches of
  ``WEBHOOKD_CLAIM_BATCH_SIZE``, one transaction each) driven directly, without HTTP,
  against a table of N due rows (``bench/scale.py``'s backlog copy), by 1 and 2 processes:
  claims/s one PostgreSQL primary sustains, and the CPU its backends spend per claimed and
  recorded delivery.
- **costs**: the production stack (API on PostgreSQL with RabbitMQ, ``webhookd worker``
  processes) with an instant receiver: API CPU per accepted publish, RabbitMQ messages per
  delivery (the queue's depth after the publishes, no consumer running), a worker's CPU per
  delivery, PostgreSQL backends' CPU per publish and per delivery.
- **scaling**: 1, 2, 4 worker processes against one PostgreSQL with a 50 ms receiver and
  ``--concurrency`` attempts in flight per worker (I/O-bound): delivered/s next to the
  model's prediction.

CPU is read with psutil over process trees (``ResourceSampler``); PostgreSQL's backends are
the postmaster's children whose process title names the scenario's database.

    .venv/bin/python -m bench.capacity [--workers 1 2 4] [--events N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench import scale
from bench.config import RunConfig
from bench.loadgen import ingest_run, publish
from bench.procs import LOCALHOST, BenchError, Procs, ResourceSampler, free_port, tail
from bench.receiver import ReceiverClient, check_signatures, steady_rate
from bench.results import ROOT, machine, medians
from bench.services import fresh_postgres, fresh_vhost, wait_for_service
from bench.webhookd_proc import PENDING_SQL, REDIS_URL, base_env, create_tenant, pg, start_serve
from webhookd.delivery.engine import WRITE_LINGER

OUTPUT = ROOT / "bench" / "results" / "capacity.json"
SLOW = 0.05  # the receiver's answer time in the scaling part, seconds


# -- measuring ---------------------------------------------------------------------------------


def postmaster_pid(dsn: str) -> int:
    """The PostgreSQL server's process: the first line of ``postmaster.pid`` in its data
    directory."""
    data = Path(str(pg(dsn, "SELECT current_setting('data_directory')")))
    return int((data / "postmaster.pid").read_text().split()[0])


class BackendSampler(ResourceSampler):
    """CPU time of the PostgreSQL backends serving one database: the postmaster's children
    whose process title (``postgres: 15/main: user database host(port) …``) names it.
    Backends that start meanwhile count from zero; one that exits between two samples
    loses its last 0.2 s."""

    def __init__(self, dsn: str, interval: float = 0.2) -> None:
        super().__init__([postmaster_pid(dsn)], interval)
        self.database = f" {dsn.rsplit('/', 1)[1]} "

    def _tree(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for child in self.roots[0].children():
            try:
                if self.database in " ".join(child.cmdline()) + " ":
                    found.append(child)
            except psutil.Error:
                continue
        return found


def queue_depth(broker_url: str, queue: str) -> int | None:
    """Messages in a RabbitMQ queue (ready + unacknowledged), from ``rabbitmqctl``; None if
    it does not answer within a minute (a drill may have stopped the RabbitMQ app)."""
    vhost = broker_url.rsplit("/", 1)[1]
    args = ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers"]
    for _ in range(6):
        done = subprocess.run(
            [*args, "name", "messages"], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode == 0:
            for line in done.stdout.splitlines():
                name, _, count = line.partition("\t")
                if name.strip() == queue:
                    return int(count)
            return 0
        time.sleep(10)
    return None


def rate_after(times: list[float], start: float, trim: float = 0.05) -> float:
    """Deliveries/s from ``start`` (every worker ready) to the arrival at ``1 - trim`` of
    the count (the tail left out, as ``steady_rate`` does)."""
    end = times[int(len(times) * (1 - trim)) - 1]
    inside = [t for t in times if start <= t <= end]
    if len(inside) < 2 or end <= start:
        return steady_rate(times)
    return (len(inside) - 1) / (end - inside[0])


# -- claims: the store driven directly -----------------------------------------------------------


def _claimer(env: dict[str, str], limit: int, ready: Any, go: Any, out: Any) -> None:
    """One claiming process (spawned): claim ``limit`` due rows, record them as succeeded,
    until none is due; puts (rows, seconds) on ``out``."""
    os.environ.update(env)
    import uvloop

    out.put(uvloop.run(_claim_loop(limit, ready, go)))


async def _claim_loop(limit: int, ready: Any, go: Any) -> tuple[int, float, int, float, float]:
    from sqlalchemy import text

    from webhookd.config import Settings
    from webhookd.db import Database, utcnow
    from webhookd.delivery.engine import worker_id
    from webhookd.delivery.job import Outcome
    from webhookd.delivery.policy import EndpointPolicy
    from webhookd.delivery.store import create_store
    from webhookd.security import resolve_server_secrets

    settings = Settings()
    db = Database(settings)
    store = create_store("postgresql", decrypt=resolve_server_secrets(settings).box.decrypt_cached)
    policy = EndpointPolicy.from_settings(settings)
    lease = dt.timedelta(seconds=settings.lease_seconds)
    owner = worker_id()
    async with db.write_connection() as conn:  # the pooled connection exists before the clock
        await conn.execute(text("SELECT 1"))
    ready.put(os.getpid())
    await asyncio.to_thread(go.wait)
    rows, batches, started, next_probe = 0, 0, time.monotonic(), 0.0
    claiming = recording = 0.0
    while True:
        t0 = time.monotonic()
        probe = time.monotonic() >= next_probe  # the engine probes once per poll interval
        if probe:
            next_probe = time.monotonic() + settings.poll_interval
        async with db.write_connection() as conn:
            claim = await store.claim_due(
                conn,
                owner=owner,
                now=utcnow(),
                lease=lease,
                limit=limit,
                in_flight={},
                endpoint_caps=lambda _: policy.max_in_flight,
                probe=probe,
            )
        if not claim.jobs:
            break
        t1 = time.monotonic()
        now = utcnow()
        outcomes = [Outcome(j, now, 1.0, True, 200, "ok") for j in claim.jobs]
        async with db.write_connection() as conn:
            await store.record_outcomes(
                conn, owner=owner, outcomes=outcomes, policy=policy, now=utcnow()
            )
        rows, batches = rows + len(claim.jobs), batches + 1
        claiming, recording = claiming + t1 - t0, recording + time.monotonic() - t1
    seconds = time.monotonic() - started
    await db.dispose()
    return rows, seconds, batches, claiming, recording


def claims_run(rows: int, processes: int, limit: int) -> dict[str, Any]:
    """A fresh database holding ``rows`` due deliveries (one endpoint), drained by
    ``processes`` claiming processes."""
    with fresh_postgres() as dsn, Procs() as procs:
        env = base_env(dsn)
        server = start_serve(procs, env, workers=False)  # the schema, as the app migrates it
        tenant = create_tenant(server.url, [f"http://{LOCALHOST}:9/claims"])
        publish(server.url, tenant.api_key, [scale.REFERENCE], concurrency=1)
        procs.stop(server.proc)
        scale.backlog(dsn, "postgresql", rows)
        spawn = multiprocessing.get_context("spawn")
        ready, out, go = spawn.Queue(), spawn.Queue(), spawn.Event()
        children = [
            spawn.Process(target=_claimer, args=({**os.environ, **env}, limit, ready, go, out))
            for _ in range(processes)
        ]
        for child in children:
            child.start()
        try:
            pids = [ready.get(timeout=120) for _ in children]
            with ResourceSampler(pids) as client, BackendSampler(dsn) as backends:
                start = time.monotonic()
                go.set()
                done = [out.get(timeout=1800) for _ in children]
                wall = time.monotonic() - start
            left = int(pg(dsn, PENDING_SQL))
        finally:
            for child in children:
                child.join(timeout=30)
                if child.is_alive():
                    child.kill()
    claimed = sum(d[0] for d in done)
    batches = sum(d[2] for d in done)
    if claimed != rows or left:
        raise BenchError(f"claims: {claimed:,} of {rows:,} recorded, {left:,} still pending")
    pg_cpu, py_cpu = backends.result()["cpu_seconds"], client.result()["cpu_seconds"]
    return {
        "processes": processes,
        "rows": rows,
        "batch": limit,
        "claims_per_s": claimed / wall,
        "wall_seconds": wall,
        "pg_cpu_seconds": pg_cpu,
        "pg_cpu_us_per_delivery": pg_cpu / claimed * 1e6,
        "client_cpu_us_per_delivery": py_cpu / claimed * 1e6,
        "pg_cores_busy": pg_cpu / wall,
        # one claim transaction and one record transaction, as a claiming process saw them
        "claim_ms": sum(d[3] for d in done) / batches * 1000,
        "record_ms": sum(d[4] for d in done) / batches * 1000,
    }


# -- costs and scaling: the production stack ----------------------------------------------------


def start_workers(procs: Procs, env: dict[str, str], count: int) -> list[Any]:
    """``count`` ``webhookd worker`` processes, each with its metrics port; returned once
    every one answers on it (Celery and the engine started)."""
    started = []
    for _ in range(count):
        port = free_port()
        proc = procs.python(
            "worker", ["-m", "webhookd", "worker"], {**env, "WEBHOOKD_METRICS_PORT": str(port)}
        )
        started.append((proc, f"http://{LOCALHOST}:{port}/metrics"))
    for proc, url in started:
        procs.wait_http(proc, url, timeout=120)
    return [proc for proc, _ in started]


def publish_backlog(cfg: RunConfig, url: str, api_key: str, dsn: str) -> int:
    """Publish with ``wrk`` until ``cfg.events`` deliveries are pending (wrk runs for its
    whole ``-d`` even when a thread stopped early, so in short runs); the backlog."""
    backlog = int(pg(dsn, PENDING_SQL))
    while backlog < cfg.events:
        ingest_run(cfg, url, api_key, max_events=cfg.events - backlog, duration=2)
        time.sleep(0.5)  # answers in flight commit, the API's last messages go out
        backlog = int(pg(dsn, PENDING_SQL))
    return backlog


def stack_cycle(
    cfg: RunConfig,
    procs: Procs,
    stack: dict[str, Any],
    *,
    workers: int,
    delay: float,
    worker_settings: dict[str, str],
) -> dict[str, Any]:
    """Publish ``cfg.events`` events through the API with no worker running (API and
    backends' CPU sampled), count the wake-up messages queued, then start ``workers``
    workers and time the drain at the receiver (workers' and backends' CPU sampled from the
    moment all are ready)."""
    server, dsn, receiver, tenant = (
        stack["server"],
        stack["dsn"],
        stack["receiver"],
        stack["tenant"],
    )
    load = [os.getloadavg()[0]]
    with ResourceSampler([server.pid]) as api, BackendSampler(dsn) as pg_in:
        backlog = publish_backlog(cfg, server.url, tenant.api_key, dsn)
    last_attempt = int(pg(dsn, "SELECT coalesce(max(id), 0) FROM attempts"))
    messages = queue_depth(stack["broker"], stack["queue"])
    receiver.reset(delay=delay, secret=tenant.secret, sample=cfg.sample, detail=False)
    started = start_workers(procs, {**stack["env"], **worker_settings}, workers)
    ready_at = time.monotonic()
    before = receiver.stats()["unique"]  # delivered while the workers came up
    what = f"{workers} worker(s), {delay * 1000:.0f} ms receiver"
    with ResourceSampler([p.pid for p in started]) as res, BackendSampler(dsn) as pg_out:
        try:
            stats = receiver.wait_for(backlog, timeout=cfg.timeout, what=what)
        except BenchError as exc:
            logs = "\n".join(tail(p, 10) for p in started)
            raise BenchError(f"{exc}\nworker logs:\n{logs}") from exc
    load.append(os.getloadavg()[0])
    left_in_queue = queue_depth(stack["broker"], stack["queue"])
    attempt_ms = float(
        pg(dsn, f"SELECT avg(duration_ms) FROM attempts WHERE id > {last_attempt}")  # noqa: S608
    )
    for proc in started:
        procs.stop(proc)
    check_signatures(stats, what)
    sampled = backlog - before
    counted = {} if messages is None else {"messages_per_delivery": messages / backlog}
    return {
        **counted,
        "workers": workers,
        "delay_ms": delay * 1000,
        "backlog": backlog,
        "rate": rate_after(receiver.arrivals()["times"], ready_at),
        "duplicates": stats["duplicates"],
        "attempt_ms": attempt_ms,  # the HTTP part of a slot's time, as the worker saw it
        "load_average": max(load),  # 1-minute load average, before and after
        "api_cpu_us_per_publish": api.result()["cpu_seconds"] / backlog * 1e6,
        "pg_cpu_us_per_publish": pg_in.result()["cpu_seconds"] / backlog * 1e6,
        "messages": messages,
        "messages_left_after_drain": left_in_queue,
        "delivered_before_sampling": before,
        "worker_cpu_us_per_delivery": res.result()["cpu_seconds"] / sampled * 1e6,
        "pg_cpu_us_per_delivery": pg_out.result()["cpu_seconds"] / sampled * 1e6,
        "worker_cpu_percent": res.result()["cpu_percent"],
    }


def stack_round(
    cfg: RunConfig, receiver: ReceiverClient, workers: list[int], concurrency: int
) -> dict[str, dict[str, Any]]:
    """One round on a fresh database and vhost: the costs cycle (1 worker with the engine's
    defaults, instant receiver), then one scaling cycle per worker count."""
    wait_for_service("Redis", 6379)
    results: dict[str, dict[str, Any]] = {}
    queue = f"webhookd_capacity_{uuid.uuid4().hex[:8]}"
    with fresh_postgres() as dsn, fresh_vhost() as broker, Procs() as procs:
        env = base_env(dsn, broker_url=broker, redis_url=REDIS_URL, worker_queue=queue)
        server = start_serve(procs, env, workers=False)
        tenant = create_tenant(server.url, [receiver.url("/hook/0")])
        stack = {"server": server, "dsn": dsn, "receiver": receiver, "tenant": tenant}
        stack.update(env=env, broker=broker, queue=queue)
        results["costs"] = stack_cycle(cfg, procs, stack, workers=1, delay=0.0, worker_settings={})
        io_bound = {
            "WEBHOOKD_DELIVERY_CONCURRENCY": str(concurrency),
            "WEBHOOKD_CLAIM_BATCH_SIZE": str(min(100, concurrency)),
        }
        for n in workers:
            results[f"scaling_{n}w"] = stack_cycle(
                cfg, procs, stack, workers=n, delay=SLOW, worker_settings=io_bound
            )
    return results


# -- the model ---------------------------------------------------------------------------------


def predict(medians_: dict[str, Any], workers: list[int], concurrency: int) -> dict[str, Any]:
    """The model's delivered/s for N workers: the least of what the workers' slots allow
    (N × concurrency / receiver time), what one PostgreSQL sustains in claims (the best
    claims/s measured) and what the machine's cores allow at the measured CPU per delivery.

    Then a second-order figure: a slot is busy for the attempt (as the worker timed it)
    plus the writer's linger, one record transaction and one claim transaction (timed by
    the claims part at a batch of ``concurrency`` rows), so N × concurrency / that time."""
    claims = max(v["claims_per_s"] for k, v in medians_.items() if k.startswith("claims_"))
    costs = medians_["costs"]
    # the backlog is published before the drain: only the workers and backends compete
    cpu_us = costs["worker_cpu_us_per_delivery"] + costs["pg_cpu_us_per_delivery"]
    cores = os.cpu_count() or 1
    small = medians_.get(f"claims_1p_b{min(100, concurrency)}")
    out: dict[str, Any] = {}
    for n in workers:
        cycle = medians_[f"scaling_{n}w"]
        slots = n * concurrency / SLOW
        cpu = cores / (cpu_us / 1e6)
        bound = min((slots, "worker slots"), (claims, "PostgreSQL claims"), (cpu, "CPU"))
        measured = cycle["rate"]
        out[f"{n}w"] = {
            "slots_bound": slots,
            "claims_bound": claims,
            "cpu_bound": cpu,
            "predicted": bound[0],
            "limit": bound[1],
            "measured": measured,
            "measured_over_predicted": measured / bound[0],
            # the time a slot takes per delivery that the measurement implies
            "implied_slot_ms": n * concurrency / measured * 1000,
            "attempt_ms": cycle["attempt_ms"],
        }
        if small is not None:
            slot_ms = cycle["attempt_ms"] + WRITE_LINGER * 1000
            slot_ms += small["claim_ms"] + small["record_ms"]
            out[f"{n}w"]["second_order_slot_ms"] = slot_ms
            out[f"{n}w"]["second_order_predicted"] = n * concurrency / slot_ms * 1000
    return out


def _rounds(data: dict[str, Any], name: str, key: str, fmt: str) -> str:
    return " / ".join(format(r[key], fmt) for r in data["rounds"].get(name, []))


def report(data: dict[str, Any]) -> str:
    """The tables of docs/SCALING.md, in Markdown, from a results file."""
    med, lines = data["median"], []
    lines += [
        "| claims (store driven directly) | claims/s | rounds | PostgreSQL CPU µs "
        "per delivery | client CPU µs per delivery | claim / record ms |",
        "|---|---|---|---|---|---|",
    ]
    for name in sorted(k for k in med if k.startswith("claims_")):
        m = med[name]
        lines.append(
            f"| {m['processes']:.0f} process(es), batches of {m['batch']:.0f} "
            f"| {m['claims_per_s']:,.0f} "
            f"| {_rounds(data, name, 'claims_per_s', ',.0f')} | {m['pg_cpu_us_per_delivery']:.0f} "
            f"({_rounds(data, name, 'pg_cpu_us_per_delivery', '.0f')}) "
            f"| {m['client_cpu_us_per_delivery']:.0f} "
            f"| {m['claim_ms']:.1f} / {m['record_ms']:.1f} |"
        )
    lines += [
        "",
        "| stack cycle | delivered/s | worker CPU µs per delivery | PostgreSQL CPU µs per "
        "delivery | API CPU µs per publish | PostgreSQL CPU µs per publish | messages per "
        "delivery | attempt ms | load average |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ["costs", *sorted(k for k in med if k.startswith("scaling_"))]:
        if name not in med:
            continue
        m = med[name]
        lines.append(
            f"| {name} | {m['rate']:,.0f} ({_rounds(data, name, 'rate', ',.0f')}) "
            f"| {m['worker_cpu_us_per_delivery']:.0f} "
            f"({_rounds(data, name, 'worker_cpu_us_per_delivery', '.0f')}) "
            f"| {m['pg_cpu_us_per_delivery']:.0f} | {m['api_cpu_us_per_publish']:.0f} "
            f"({_rounds(data, name, 'api_cpu_us_per_publish', '.0f')}) "
            f"| {m['pg_cpu_us_per_publish']:.0f} "
            f"| {m.get('messages_per_delivery', float('nan')):.3f} "
            f"| {m['attempt_ms']:.1f} | {m['load_average']:.1f} |"
        )
    if "prediction" in data:
        lines += [
            "",
            "| workers | predicted (first order) | limit | second order | measured | "
            "measured ÷ first order | ÷ second order | slot ms implied |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for n, p in data["prediction"].items():
            second = p.get("second_order_predicted", float("nan"))
            lines.append(
                f"| {n} | {p['predicted']:,.0f} | {p['limit']} | {second:,.0f} "
                f"| {p['measured']:,.0f} "
                f"| {p['measured_over_predicted']:.2f} | {p['measured'] / second:.2f} "
                f"| {p['implied_slot_ms']:.0f} |"
            )
    return "\n".join(lines)


def save(
    args: argparse.Namespace,
    raw: dict[str, list[dict[str, Any]]],
    started: str,
    load_before: tuple[float, float, float],
    parts: set[str],
) -> dict[str, Any]:
    """Write what was measured so far (after every round: a failed round keeps the others)."""
    summary = {name: medians(rounds) for name, rounds in raw.items()}
    data: dict[str, Any] = {
        "machine": machine(),
        "started": started,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "args": vars(args) | {"output": str(args.output)},
        "rounds": raw,
        "median": summary,
    }
    stack = ["costs", *(f"scaling_{n}w" for n in args.workers)]
    if {"claims", "stack"} <= parts and all(name in summary for name in stack):
        data["prediction"] = predict(summary, args.workers, args.concurrency)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--events", type=int, default=10_000, help="backlog of each cycle")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=20, help="per worker, scaling part")
    parser.add_argument("--claim-rows", type=int, default=20_000)
    parser.add_argument(
        "--claim-batches", type=int, nargs="+", default=[100, 20], help="rows per claim"
    )
    parser.add_argument("--only", nargs="+", choices=["claims", "stack"], default=None)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--report", action="store_true", help="print the tables of --output")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.output.read_text())))
        return 0
    parts = set(args.only or ["claims", "stack"])
    cfg = RunConfig(events=args.events, timeout=900.0)
    raw: dict[str, list[dict[str, Any]]] = {}
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    with Procs() as procs:
        receiver = ReceiverClient(procs) if "stack" in parts else None
        for r in range(args.rounds):
            if "claims" in parts:
                for batch in args.claim_batches:
                    for n in (1, 2):
                        print(f"round {r + 1}: claims of {batch}, {n} process(es)", flush=True)
                        result = claims_run(args.claim_rows, n, batch)
                        raw.setdefault(f"claims_{n}p_b{batch}", []).append(result)
                        print(f"  {json.dumps(result)}", flush=True)
                        save(args, raw, started, load_before, parts)
            if receiver is not None:
                print(f"round {r + 1}: stack (costs, workers {args.workers})", flush=True)
                for name, result in stack_round(
                    cfg, receiver, args.workers, args.concurrency
                ).items():
                    raw.setdefault(name, []).append(result)
                    print(f"  {name}: {json.dumps(result)}", flush=True)
            save(args, raw, started, load_before, parts)
    data = save(args, raw, started, load_before, parts)
    summary = data["median"]
    for name, m in summary.items():
        print(name, json.dumps({k: round(v, 2) for k, v in m.items() if isinstance(v, float)}))
    for n, p in data.get("prediction", {}).items():
        print(
            f"{n}: predicted {p['predicted']:,.0f}/s ({p['limit']}), measured "
            f"{p['measured']:,.0f}/s ({p['measured_over_predicted']:.2f}), "
            f"implied slot time {p['implied_slot_ms']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
