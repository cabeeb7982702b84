"""Ingest throughput of ``POST /api/v1/events`` against the no-database FastAPI ceiling.

Starts, one after the other under the same uvicorn settings (1 process, uvloop, httptools,
no access log): a no-database FastAPI app with the same request model (the ceiling), then
``webhookd serve`` (workers off: the API alone) on SQLite or PostgreSQL with a tenant
(rate limit out of reach) and one endpoint; loads each with ``wrk`` (unique event ids,
~1 KB payloads) and prints requests/s, p50/p99 and server CPU per request.

    .venv/bin/python bench/ingest_profile.py [--db sqlite|postgresql] [--duration 10]
        [--connections 64] [--rounds 1] [--profile prof.svg|prof.txt]
        [--api-workers 2 --redis redis://127.0.0.1:6379/13]  # PostgreSQL only

``--profile`` runs ``py-spy record`` on the webhookd process during the last round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psutil
from embedded import ADMIN, create_tenant_and_endpoint, wait_ready  # bench/ is on sys.path

from webhookd.event.schemas import EventCreate

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

WRK_SCRIPT = r"""
local counter = 0
local prefix = string.format("%d_%d", os.time(), math.random(1, 1000000000))
local pad = string.rep("x", 900)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("BENCH_API_KEY") or "none"

request = function()
  counter = counter + 1
  local body = '{"event_id":"evt_' .. prefix .. '_' .. counter ..
    '","event_type":"bench.event","payload":{"n":' .. counter .. ',"data":"' .. pad .. '"}}'
  return wrk.format(nil, "/api/v1/events", nil, body)
end

done = function(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %f, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_ms": %f, "p99_ms": %f}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def ceiling_app():  # noqa: ANN201
    """FastAPI, the same request model, no database: what the framework alone allows."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/api/v1/events", status_code=202)
    async def publish(data: EventCreate) -> dict[str, object]:
        return {"event_id": data.event_id, "event_type": data.event_type, "duplicate": False}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def run_ceiling(port: int) -> None:
    import uvicorn

    uvicorn.run(
        ceiling_app(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(port: int, duration: int, connections: int, api_key: str) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_SCRIPT)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                "-s",
                fh.name,
                f"http://127.0.0.1:{port}",
            ],
            env={**os.environ, "BENCH_API_KEY": api_key},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(fh.name)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, float] = json.loads(line[len("RESULT ") :])
    result["rate"] = result["requests"] / result["seconds"]
    return result


def measure(
    proc: subprocess.Popen[bytes], port: int, args: argparse.Namespace, api_key: str, label: str
) -> dict[str, float]:
    procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    before = sum(sum(p.cpu_times()[:2]) for p in procs)
    result = wrk(port, args.duration, args.connections, api_key)
    after = sum(sum(p.cpu_times()[:2]) for p in procs)
    result["cpu_ms"] = (after - before) * 1000 / max(1, result["requests"])
    print(
        f"  {label:<10} {result['rate']:>8,.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
        f"p99 {result['p99_ms']:6.1f} ms  cpu {result['cpu_ms']:.3f} ms/req  "
        f"non-2xx {result['non2xx']:.0f}  socket errors {result['socket_errors']:.0f}",
        flush=True,
    )
    return result


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
    database_url: str, port: int, api_workers: int, redis_url: str | None
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
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument("--profile", help="py-spy flame graph of webhookd (last round)")
    parser.add_argument("--ceiling-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling_server:
        run_ceiling(args.ceiling_server)
        return

    ceilings: list[dict[str, float]] = []
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}/{args.rounds}", flush=True)
            port = free_port()
            if not args.no_ceiling:
                ceiling = subprocess.Popen(
                    [sys.executable, __file__, "--ceiling-server", str(port)]
                )
                try:
                    wait_ready(f"http://127.0.0.1:{port}/health")
                    ceilings.append(measure(ceiling, port, args, "none", "ceiling"))
                finally:
                    stop(ceiling)
            if args.db == "sqlite":
                url, pg_name = f"sqlite:///{Path(tmp) / f'bench{round_}.db'}", None
            else:
                pg_name = f"webhookd_ingest_{uuid.uuid4().hex[:8]}"
                asyncio.run(pg_database("create", pg_name))
                url = POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
            port = free_port()
            server = start_webhookd(url, port, args.api_workers, args.redis)
            spy = None
            try:
                api_key = create_tenant_and_endpoint(f"http://127.0.0.1:{port}", 9)
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
        f"cpu {med(results, 'cpu_ms'):.3f} ms/event"
    )
    if ceilings:
        ceiling = med(ceilings, "rate")
        line += f"; ceiling {ceiling:,.0f} req/s; ratio {rate / ceiling:.2f}"
    print(line)


if __name__ == "__main__":
    main()
