"""Ingest throughput of ``POST /api/v1/events`` against the no-database FastAPI ceiling.

Starts, one after the other: the benchmark's no-database ceiling (``bench/ceiling_app.py``),
then
``webhookd serve`` (workers off: the API alone) on SQLite or PostgreSQL with a tenant
(rate limit out of reach) and one endpoint; loads each with the benchmark's load
generator (``bench/loadgen.py``: wrk and ``bench/ingest.lua``) and prints requests/s,
p50/p99 and the server's CPU per request, the figure that stays readable on a busy machine.

    .venv/bin/python -m bench.ingest_profile [--db sqlite|postgresql] [--duration 10]
        [--connections 64] [--rounds 1] [--profile prof.svg|prof.txt]
        [--api-workers 2 --redis redis://127.0.0.1:6379/13]  # PostgreSQL only
        [--broker amqp://guest:guest@127.0.0.1:5672//]  # as make bench's distributed ingest

``--profile`` runs ``py-spy record`` on the webhookd process during the last round.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psutil

from bench.ceiling_app import API_KEY as CEILING_KEY
from bench.loadgen import ingest
from bench.procs import free_port, http_ok, wait_until
from bench.webhookd_proc import ADMIN_KEY as ADMIN
from bench.webhookd_proc import create_tenant

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def wait_ready(url: str) -> None:
    wait_until(lambda: http_ok(url), timeout=60, what=url)


def wrk(port: int, duration: int, connections: int, api_key: str) -> dict[str, Any]:
    """The benchmark's own load (bench/ingest.lua through bench.loadgen)."""
    result = ingest(
        f"http://127.0.0.1:{port}",
        api_key,
        duration=duration,
        connections=connections,
        prefix=f"p{uuid.uuid4().hex[:8]}",
    )
    return result.as_dict()


def measure(
    proc: subprocess.Popen[bytes], port: int, args: argparse.Namespace, api_key: str, label: str
) -> dict[str, float]:
    procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    database = _postgres_processes()
    before, db_before = _cpu(procs), _cpu(database)
    result = wrk(port, args.duration, args.connections, api_key)
    after, db_after = _cpu(procs), _cpu(database + _postgres_processes())
    result["cpu_ms"] = (after - before) * 1000 / max(1, result["requests"])
    result["db_cpu_ms"] = (db_after - db_before) * 1000 / max(1, result["requests"])
    print(
        f"  {label:<10} {result['rate']:>8,.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
        f"p99 {result['p99_ms']:6.1f} ms  cpu {result['cpu_ms']:.3f} ms/req  "
        f"postgres cpu {result['db_cpu_ms']:.3f} ms/req  "
        f"non-2xx {result['non2xx']:.0f}  socket errors {result['socket_errors']:.0f}",
        flush=True,
    )
    return result


def _postgres_processes() -> list[psutil.Process]:
    """Every PostgreSQL server process (backends, WAL writer, checkpointer...)."""
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def _cpu(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of the processes still alive (counted once each)."""
    total = 0.0
    for p in {p.pid: p for p in procs}.values():
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def pg_database(action: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN)
    try:
        if action == "create":
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def start_webhookd(
    database_url: str, port: int, api_workers: int, redis_url: str | None, broker_url: str | None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WEBHOOKD_DATABASE_URL": database_url,
        "WEBHOOKD_ADMIN_KEY": ADMIN,
        "WEBHOOKD_ENCRYPTION_KEY": "Zl8ZqL0bY2m7Y3c9d2k1bXhQeVRzV0x6cUhKc0F0b2c=",
        "WEBHOOKD_API_KEY_PEPPER": "bench-pepper",
        "WEBHOOKD_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOKD_RUN_WORKERS": "false",
        "WEBHOOKD_LOG_LEVEL": "WARNING",
        **({"WEBHOOKD_REDIS_URL": redis_url} if redis_url else {}),
        **({"WEBHOOKD_BROKER_URL": broker_url} if broker_url else {}),
    }
    cmd = [sys.executable, "-m", "webhookd", "serve", "--port", str(port)]
    if api_workers > 1:
        cmd += ["--workers", str(api_workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/ready")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--redis", help="WEBHOOKD_REDIS_URL (needed by --api-workers > 1)")
    parser.add_argument("--broker", help="WEBHOOKD_BROKER_URL: the API hands deliveries to Celery")
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--profile", help="py-spy flame graph of webhookd (last round)")
    args = parser.parse_args()
    ceilings: list[dict[str, float]] = []
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}", flush=True)
            port = free_port()
            if not args.no_ceiling:
                ceiling = subprocess.Popen([sys.executable, "-m", "bench.ceiling_app", str(port)])
                try:
                    wait_ready(f"http://127.0.0.1:{port}/ready")
                    ceilings.append(measure(ceiling, port, args, CEILING_KEY, "ceiling"))
                finally:
                    stop(ceiling)
            if args.db == "sqlite":
                url, pg_name = f"sqlite:///{Path(tmp) / f'bench{round_}.db'}", None
            else:
                pg_name = f"webhookd_ingest_{uuid.uuid4().hex[:8]}"
                asyncio.run(pg_database("create", pg_name))
                url = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
            port = free_port()
            server = start_webhookd(url, port, args.api_workers, args.redis, args.broker)
            spy = None
            try:
                api_key = create_tenant(
                    f"http://127.0.0.1:{port}", ["http://127.0.0.1:9/hook"]
                ).api_key
                if args.profile and round_ == args.rounds - 1:
                    spy = subprocess.Popen(
                        [
                            str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "-o",
                            args.profile,
                            "--pid",
                            str(server.pid),
                            "--duration",
                            str(args.duration),
                            "--subprocesses",
                            "--nonblocking",
                            "--rate",
                            "400",
                            "--format",
                            "raw" if args.profile.endswith(".txt") else "flamegraph",
                        ],
                        stdout=subprocess.DEVNULL,
                    )
                results.append(measure(server, port, args, api_key, "webhookd"))
                if spy:
                    spy.wait()
            finally:
                stop(server)
                if pg_name:
                    asyncio.run(pg_database("drop", pg_name))

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    rate = med(results, "rate")
    line = (
        f"webhookd ({args.db}, {args.api_workers} API process): median {rate:,.0f} events/s, "
        f"p50 {med(results, 'p50_ms'):.1f} ms, p99 {med(results, 'p99_ms'):.1f} ms, "
        f"cpu {med(results, 'cpu_ms'):.3f} ms/event (postgres {med(results, 'db_cpu_ms'):.3f})"
    )
    if ceilings:
        ceiling = med(ceilings, "rate")
        line += f"; ceiling {ceiling:,.0f} req/s; ratio {rate / ceiling:.2f}"
    print(line)


if __name__ == "__main__":
    main()
