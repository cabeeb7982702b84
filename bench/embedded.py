"""Embedded mode (SQLite, in-process workers), end to end through the real API.

1. ingest: events/s accepted by POST /api/v1/events from concurrent publishers, with the
   workers off (so the figure is the API alone);
2. drain: the server restarts with workers on and delivers that backlog; deliveries/s
   completed at the receiver.

    .venv/bin/python bench/embedded.py [--events 5000] [--concurrency 50] [--receiver-delay 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx

ADMIN = "whadm_bench"
HERE = Path(__file__).parent


def start_server(db: Path, port: int, workers: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WEBHOOKD_DATABASE_URL": f"sqlite:///{db}",
        "WEBHOOKD_ADMIN_KEY": ADMIN,
        "WEBHOOKD_ENCRYPTION_KEY": "Zl8ZqL0bY2m7Y3c9d2k1bXhQeVRzV0x6cUhKc0F0b2c=",
        "WEBHOOKD_API_KEY_PEPPER": "bench-pepper",
        "WEBHOOKD_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOKD_RUN_WORKERS": "true" if workers else "false",
        "WEBHOOKD_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "webhookd", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(f"http://127.0.0.1:{port}/ready")
    return proc


async def publish(
    url: str, api_key: str, events: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    next_id = iter(range(events))
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    payload = '{"n": %d, "data": "' + "x" * 900 + '"}'

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in next_id:
            body = (
                f'{{"event_id": "evt_{n}", "event_type": "bench.event", "payload": {payload % n}}}'
            )
            start = time.perf_counter()
            async with session.post(f"{url}/api/v1/events", data=body, headers=headers) as r:
                await r.read()
                assert r.status == 202, r.status
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return events / elapsed, latencies


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def create_tenant_and_endpoint(url: str, recv_port: int) -> str:
    """A tenant with no practical rate limit and one endpoint at the receiver; its API key."""
    tenant = httpx.post(
        f"{url}/api/v1/tenants",
        headers={"X-Admin-Key": ADMIN},
        json={"name": "bench", "email": "b@example.com", "rate_limit": 1_000_000},
    ).json()
    httpx.post(
        f"{url}/api/v1/tenants/{tenant['id']}/endpoints",
        headers={"X-API-Key": tenant["api_key"]},
        json={"url": f"http://127.0.0.1:{recv_port}/hook"},
    ).raise_for_status()
    return str(tenant["api_key"])


def received(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/").text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--receiver-delay", type=float, default=0.0)
    args = parser.parse_args()
    api_port, recv_port = 18100, 18101
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "receiver_asgi.py"), str(recv_port), str(args.receiver_delay)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        server = start_server(db, api_port, workers=False)
        try:
            url = f"http://127.0.0.1:{api_port}"
            api_key = create_tenant_and_endpoint(url, recv_port)
            rate, latencies = asyncio.run(publish(url, api_key, args.events, args.concurrency))
            q = statistics.quantiles(latencies, n=100)
            p50, p99 = q[49] * 1000, q[98] * 1000
            print(f"ingest: {rate:,.0f} events/s  p50 {p50:.1f} ms  p99 {p99:.1f} ms")
        finally:
            server.terminate()
            server.wait()
        before = received(recv_port)
        start = time.perf_counter()
        server = start_server(db, api_port, workers=True)
        ready = time.perf_counter()
        at_ready = received(recv_port) - before
        try:
            while received(recv_port) - before < args.events:
                if time.perf_counter() - start > 600:
                    raise RuntimeError("drain did not finish in 10 minutes")
                time.sleep(0.02)
            done = time.perf_counter()
            steady = (args.events - at_ready) / (done - ready)
            print(
                f"drain: {args.events:,} deliveries in {done - start:.2f} s incl. process start; "
                f"{steady:,.0f} deliveries/s once ready ({at_ready:,} delivered during start-up)"
            )
        finally:
            server.terminate()
            server.wait()
            receiver.terminate()


if __name__ == "__main__":
    main()
