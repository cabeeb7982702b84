"""Distributed mode: API + N Celery workers + RabbitMQ + PostgreSQL + Redis, end to end.

Publishes a backlog with the workers stopped, then starts N workers and measures how fast
they drain it at the receiver (deliveries/s), for N = 1 and 2 by default.

    .venv/bin/python bench/distributed.py [--events 10000] [--workers 1 2] [--receiver-delay 0]

Needs PostgreSQL (postgres@127.0.0.1:5432, trust), Redis and RabbitMQ (guest) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).parent))
from embedded import ADMIN, create_tenant_and_endpoint, publish, received, wait_ready  # noqa: E402

HERE = Path(__file__).parent
PG = "postgresql://postgres@127.0.0.1:5432"


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(f"{PG}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_once(events: int, workers: int, receiver_delay: float) -> float:
    name = f"webhookd_bench_{uuid.uuid4().hex[:8]}"
    vhost = name
    asyncio.run(_admin_sql(f'CREATE DATABASE "{name}"'))
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    env = {
        **os.environ,
        "WEBHOOKD_DATABASE_URL": f"{PG}/{name}",
        "WEBHOOKD_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "WEBHOOKD_REDIS_URL": "redis://127.0.0.1:6379/14",
        "WEBHOOKD_ADMIN_KEY": ADMIN,
        "WEBHOOKD_ENCRYPTION_KEY": "Zl8ZqL0bY2m7Y3c9d2k1bXhQeVRzV0x6cUhKc0F0b2c=",
        "WEBHOOKD_API_KEY_PEPPER": "bench-pepper",
        "WEBHOOKD_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOKD_LOG_LEVEL": "WARNING",
    }
    api_port, recv_port = 18200, 18201
    procs: list[subprocess.Popen[bytes]] = []
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "receiver_asgi.py"),
                    str(recv_port),
                    str(receiver_delay),
                ],
                **quiet,
            )
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "webhookd", "serve", "--port", str(api_port)],
                env=env,
                **quiet,
            )
        )
        url = f"http://127.0.0.1:{api_port}"
        wait_ready(f"{url}/ready")
        wait_ready(f"http://127.0.0.1:{recv_port}/")
        api_key = create_tenant_and_endpoint(url, recv_port)
        asyncio.run(publish(url, api_key, events, 50))  # workers not started yet
        before = received(recv_port)
        start = time.perf_counter()
        for n in range(workers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "webhookd", "worker"],
                    env={**env, "WEBHOOKD_METRICS_PORT": str(19300 + n)},
                    **quiet,
                )
            )
        first_at, first_count = None, 0
        while (done := received(recv_port) - before) < events:
            if first_at is None and done:
                first_at, first_count = time.perf_counter(), done  # workers are up
            if time.perf_counter() - start > 600:
                raise RuntimeError("drain did not finish in 10 minutes")
            time.sleep(0.02)
        # Steady rate: from the first delivery to the last (worker start-up excluded).
        return (events - first_count) / (time.perf_counter() - (first_at or start))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--receiver-delay", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    for workers in args.workers:
        rates = [run_once(args.events, workers, args.receiver_delay) for _ in range(args.rounds)]
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"{workers} worker(s): drain {sorted(rates)[len(rates) // 2]:,.0f} deliveries/s "
            f"(median, first to last delivery; runs: {runs})",
            flush=True,
        )


if __name__ == "__main__":
    main()
