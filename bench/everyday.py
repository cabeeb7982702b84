"""Everyday load (issue 18): what the server costs when little happens.

An open-loop publisher (event *i* of a phase is sent at its scheduled time, whatever the
answers) publishes at each rate of ``RunConfig.everyday_rates`` for ``everyday_seconds``
after a warm-up, against ``webhookd serve`` with its in-process engine, on SQLite or on
PostgreSQL (a fresh database, no broker). For each phase:

- ``ms_per_event_<rate>``: CPU time (user + system) of the webhookd process tree over the
  phase, divided by the deliveries the receiver counted in the same window;
- ``pg_ms_per_event_<rate>`` (PostgreSQL): the same for the database's own backends
  serving this database (``pg_stat_activity``), reported beside it, not in it;
- ``p50_ms_<rate>``: publish → first arrival at the receiver, median.

``everyday.floor``: the same phases against ``bench/relay_app.py`` (webhookd's publish route
and delivery attempt with no database: the HTTP work in and out alone), the floor that
``INFO_RATIOS`` divides the CPU per delivered event by.

``everyday.idle``: CPU % of one core of a fresh server with no traffic, measured over
``idle_seconds`` once start-up settled, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.run --only everyday --output bench/results/everyday.json --no-doc
    .venv/bin/python -m bench.everyday --db sqlite --rate 500 --svg docs/perf/x.svg
    .venv/bin/python -m bench.everyday --compare out.json --src /tmp/before/src --rounds 3

The second records a py-spy flame graph of the server under that load (``--rate 0``: idle);
the third runs the scenario with the server from another copy of ``src/`` and from this
tree, alternating, in one session (before/after figures of a change).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import uvloop

from bench.ceiling_app import API_KEY as RELAY_KEY
from bench.ceilings import CEILING_SECRET as SECRET
from bench.config import RunConfig
from bench.loadgen import event_body
from bench.procs import LOCALHOST, BenchError, Procs, free_port, tail
from bench.receiver import ReceiverClient, check_signatures
from bench.services import fresh_postgres
from bench.webhookd_proc import Server, Tenant, base_env, create_tenant, pg, start_serve

# Run the server from another copy of ``src/`` (``--src``: before/after comparisons).
SERVER_PYTHONPATH: str | None = None


class CpuMeter:
    """CPU seconds (user + system) of a set of processes, summed; processes that appear
    between two readings are counted from zero, those that vanish keep their last value."""

    def __init__(self, find: Any) -> None:
        self._find = find  # () -> list[psutil.Process]
        self._seen: dict[int, float] = {}

    def read(self) -> float:
        for proc in self._find():
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            self._seen[proc.pid] = times.user + times.system
        return sum(self._seen.values())


def tree(pid: int) -> Any:
    root = psutil.Process(pid)

    def find() -> list[psutil.Process]:
        try:
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    return find


def backends(dsn: str) -> Any:
    """The PostgreSQL backends connected to this database (the server's pool), except the
    one asking."""
    name = dsn.rsplit("/", 1)[1]
    sql = (
        "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )

    def find() -> list[psutil.Process]:
        pids = [int(p) for p in str(pg(dsn, sql)).split(",") if p]
        out = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                out.append(psutil.Process(pid))
        return out

    return find


@dataclass
class Window:
    rate: float
    start: float
    end: float
    cpu: float  # server tree, seconds
    db_cpu: float | None  # PostgreSQL backends, seconds
    sent: dict[str, float]  # event_id -> send time
    failures: int


async def _publish(
    url: str, api_key: str, rate: float, seconds: float, prefix: str, meters: list[CpuMeter]
) -> tuple[float, float, list[float], dict[str, float], int]:
    """Open loop at ``rate`` for ``seconds``; the meters are read at both ends of the window
    (off the event loop's thread so that a slow read does not shift the schedule)."""
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    sent: dict[str, float] = {}
    failures = 0
    loop = asyncio.get_running_loop()

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal failures
        event_id = f"{prefix}-{n}"
        at = time.monotonic()
        try:
            async with session.post(
                f"{url}/api/v1/events", data=event_body(event_id, n), headers=headers
            ) as r:
                await r.read()
                ok = r.status == 202
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            sent[event_id] = at
        else:
            failures += 1

    def readings() -> list[float]:
        return [m.read() for m in meters]

    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        before = await loop.run_in_executor(None, readings)
        start = time.monotonic()
        tasks = []
        total = int(rate * seconds)
        for n in range(total):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, n)))
        delay = start + seconds - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        end = time.monotonic()
        after = await loop.run_in_executor(None, readings)
        await asyncio.gather(*tasks)
    return start, end, [a - b for a, b in zip(after, before, strict=True)], sent, failures


def publish_window(
    server: Server, tenant: Tenant, rate: float, seconds: float, db_meter: CpuMeter | None
) -> Window:
    server_meter = CpuMeter(tree(server.pid))
    meters = [server_meter] + ([db_meter] if db_meter else [])
    prefix = f"e{uuid.uuid4().hex[:6]}"
    start, end, cpu, sent, failures = uvloop.run(
        _publish(server.url, tenant.api_key, rate, seconds, prefix, meters)
    )
    return Window(rate, start, end, cpu[0], cpu[1] if db_meter else None, sent, failures)


def _figures(window: Window, receiver: ReceiverClient) -> dict[str, Any]:
    arrivals = receiver.arrivals()
    delivered = sum(window.start <= t <= window.end for t in arrivals["times"])
    if delivered == 0:
        raise BenchError(f"everyday at {window.rate:g}/s: nothing delivered in the window")
    first = arrivals["first_arrival"]
    latencies = [(first[e] - t) * 1000 for e, t in window.sent.items() if e in first]
    rate = f"{window.rate:g}"
    out: dict[str, Any] = {
        f"ms_per_event_{rate}": 1000 * window.cpu / delivered,
        f"server_cpu_percent_{rate}": 100 * window.cpu / (window.end - window.start),
        f"delivered_rate_{rate}": delivered / (window.end - window.start),
        f"p50_ms_{rate}": statistics.median(latencies) if latencies else None,
        f"publish_failures_{rate}": window.failures,
        # The machine is shared: a load average above its cores means the figures of this
        # window were taken while others competed for the CPU (read them with care).
        f"load_average_{rate}": os.getloadavg()[0],
    }
    if window.db_cpu is not None:
        out[f"pg_ms_per_event_{rate}"] = 1000 * window.db_cpu / delivered
    return out


def _run_rates(
    cfg: RunConfig, receiver: ReceiverClient, server: Server, tenant: Tenant, dsn: str | None
) -> dict[str, Any]:
    receiver.reset(secret=tenant.secret, sample=cfg.sample, detail=True)
    db_meter = CpuMeter(backends(dsn)) if dsn else None
    publish_window(server, tenant, cfg.everyday_rates[0], cfg.everyday_warmup, None)
    figures: dict[str, Any] = {}
    expected = 0
    for rate in cfg.everyday_rates:
        window = publish_window(server, tenant, rate, cfg.everyday_seconds, db_meter)
        expected += len(window.sent)
        figures.update(_figures(window, receiver))
    warm = int(cfg.everyday_rates[0] * cfg.everyday_warmup)
    stats = receiver.wait_for(expected + warm, timeout=cfg.timeout, what="everyday: the rest")
    check_signatures(stats, "everyday")
    figures["duplicates"] = stats["duplicates"]
    return figures


@contextlib.contextmanager
def everyday_server(
    procs: Procs, receiver: ReceiverClient, backend: str
) -> Iterator[tuple[Server, Tenant, str | None]]:
    """``webhookd serve`` with its engine on a fresh database, one endpoint at the receiver."""
    with contextlib.ExitStack() as stack:
        dsn: str | None = None
        if backend == "postgres":
            dsn = stack.enter_context(fresh_postgres())
            url = dsn
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = f"sqlite:///{tmp / 'everyday.db'}"
        env = base_env(url)
        if SERVER_PYTHONPATH:
            env["PYTHONPATH"] = SERVER_PYTHONPATH
        server = start_serve(procs, env, workers=True)
        try:
            tenant = create_tenant(server.url, [receiver.url("/hook/0")])
            yield server, tenant, dsn
        finally:
            procs.stop(server.proc)


def everyday(cfg: RunConfig, receiver: ReceiverClient, backend: str) -> dict[str, Any]:
    with Procs() as procs, everyday_server(procs, receiver, backend) as (server, tenant, dsn):
        return _run_rates(cfg, receiver, server, tenant, dsn)


def floor(cfg: RunConfig, receiver: ReceiverClient) -> dict[str, Any]:
    """The same phases against ``bench/relay_app.py``: webhookd's publish route and delivery
    attempt without a database, the floor under the CPU per delivered event."""
    with Procs() as procs:
        port = free_port()
        target = receiver.url("/hook/0")
        proc = procs.python("relay-app", ["-m", "bench.relay_app", str(port), target, SECRET])
        server = Server(proc, f"http://{LOCALHOST}:{port}")
        procs.wait_http(proc, f"{server.url}/ready")
        tenant = Tenant("tnt_relay", RELAY_KEY, SECRET)
        return _run_rates(cfg, receiver, server, tenant, None)


def idle(cfg: RunConfig, receiver: ReceiverClient) -> dict[str, Any]:
    """CPU % of a core of a fresh server doing nothing, on each database."""
    out: dict[str, Any] = {}
    for backend in ("sqlite", "postgres"):
        with Procs() as procs, everyday_server(procs, receiver, backend) as (server, _, dsn):
            time.sleep(cfg.idle_settle)
            meter = CpuMeter(tree(server.pid))
            db_meter = CpuMeter(backends(dsn)) if dsn else None
            before, db_before = meter.read(), db_meter.read() if db_meter else 0.0
            start = time.monotonic()
            time.sleep(cfg.idle_seconds)
            cpu, db_cpu = meter.read() - before, (db_meter.read() if db_meter else 0.0) - db_before
            wall = time.monotonic() - start
        out[f"{backend}_cpu_percent"] = 100 * cpu / wall
        if db_meter:
            out["postgres_backends_cpu_percent"] = 100 * db_cpu / wall
    return out


def profile(backend: str, rate: float, seconds: float, svg: Path) -> None:
    """A py-spy flame graph of the server at ``rate`` events/s (0: idle) for ``seconds``
    (``.txt``: py-spy's raw collapsed stacks, to count)."""
    cfg = RunConfig()
    with Procs() as procs:
        receiver = ReceiverClient(procs)
        with everyday_server(procs, receiver, backend) as (server, tenant, _):
            receiver.reset(secret=tenant.secret, sample=cfg.sample, detail=True)
            if rate:
                publish_window(server, tenant, rate, cfg.everyday_warmup, None)
            time.sleep(2.0)
            spy = procs.start(
                "py-spy",
                [str(Path(sys.executable).with_name("py-spy")), "record", "--subprocesses",
                 "--rate", "200", "-o", str(svg), "--pid", str(server.pid),
                 "--format", "raw" if svg.suffix == ".txt" else "flamegraph",
                 "--duration", str(int(seconds))],
            )  # fmt: skip
            if rate:
                window = publish_window(server, tenant, rate, seconds + 1, None)
                print(_figures(window, receiver))
            spy.wait(timeout=seconds + 60)
            if spy.returncode:
                raise BenchError(f"py-spy failed:\n{tail(spy)}")


def compare(before: Path, rounds: int, backends: list[str], output: Path) -> None:
    """The everyday scenario with the server run from ``before`` (a copy of ``src/``) and
    from this tree, alternating (ABBA), in one session; every window's figures to ``output``."""
    global SERVER_PYTHONPATH
    cfg = RunConfig()
    results: list[dict[str, Any]] = []
    variants = [("before", str(before)), ("after", None)]
    with Procs() as procs:
        receiver = ReceiverClient(procs)
        for n in range(rounds):
            for backend in backends:
                for name, src in variants if n % 2 == 0 else variants[::-1]:
                    SERVER_PYTHONPATH = src
                    try:
                        figures = everyday(cfg, receiver, backend)
                    finally:
                        SERVER_PYTHONPATH = None
                    results.append({"round": n + 1, "variant": name, "backend": backend, **figures})
                    print(results[-1], flush=True)
                    output.write_text(json.dumps(results, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Everyday load: flame graphs, before/after")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s; 0: idle")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--svg", type=Path, help="record a py-spy flame graph here")
    parser.add_argument("--src", type=Path, help="run the server from this copy of src/")
    parser.add_argument("--compare", type=Path, help="before/after: results to this file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.compare:
        if args.src is None:
            parser.error("--compare needs --src (the source tree to compare with)")
        compare(args.src.resolve(), args.rounds, ["sqlite", "postgres"], args.compare)
        return
    if args.svg is None:
        parser.error("--svg or --compare")
    global SERVER_PYTHONPATH
    SERVER_PYTHONPATH = str(args.src.resolve()) if args.src else None
    profile(args.db, args.rate, args.seconds, args.svg.resolve())


if __name__ == "__main__":
    main()
