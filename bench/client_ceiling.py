"""Delivery client ceiling on this machine: how many signed POSTs/s one Python process makes.

Compares a bare aiohttp client, httpx.AsyncClient, and webhookd's own attempt function
(signing + aiohttp with the SSRF-guarded connector settings) against the same receiver.

    .venv/bin/python -m bench.client_ceiling [--requests 20000] [--concurrency 100]

(``make bench`` measures the delivery ceiling itself, bench/ceiling_client.py; this script
compares clients.)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import orjson
import uvloop

from webhookd.config import Settings
from webhookd.delivery.attempt import perform_attempt
from webhookd.delivery.http import create_client
from webhookd.delivery.job import Job

BODY = orjson.dumps({"event_id": "evt", "event_type": "bench.event", "payload": {"x": "y" * 900}})


async def _run(concurrency: int, total: int, one) -> float:  # noqa: ANN001
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - start)


async def bare_aiohttp(url: str, concurrency: int, total: int) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.post(
                url, data=BODY, headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()

        return await _run(concurrency, total, one)


async def bare_httpx(url: str, concurrency: int, total: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one() -> None:
            await client.post(url, content=BODY, headers={"Content-Type": "application/json"})

        return await _run(concurrency, total, one)


async def webhookd_attempt(url: str, concurrency: int, total: int) -> float:
    settings = Settings(allow_private_targets=True, delivery_concurrency=concurrency)
    client = create_client(settings)
    job = Job(
        1,
        1,
        1,
        1,
        url,
        ("whsec_" + "A" * 43 + "=",),
        "evt",
        "bench.event",
        {"x": "y" * 900},
        dt.datetime.now(dt.UTC),
        1,
        1,
    )
    try:

        async def one() -> None:
            outcome = await perform_attempt(client, job, allow_private=True, body_limit=4096)
            assert outcome.succeeded, outcome.summary

        return await _run(concurrency, total, one)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=18081)
    args = parser.parse_args()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver", str(args.port)],
        cwd=Path(__file__).resolve().parent.parent,
    )
    time.sleep(1.5)
    url = f"http://127.0.0.1:{args.port}/hook"
    try:
        results: dict[str, list[float]] = {"aiohttp": [], "webhookd attempt": [], "httpx": []}
        for _ in range(args.rounds):
            results["aiohttp"].append(
                uvloop.run(bare_aiohttp(url, args.concurrency, args.requests))
            )
            results["webhookd attempt"].append(
                uvloop.run(webhookd_attempt(url, args.concurrency, args.requests))
            )
            results["httpx"].append(
                uvloop.run(bare_httpx(url, args.concurrency, max(2000, args.requests // 10)))
            )
        base = statistics.median(results["aiohttp"])
        print(f"{'client':<18} {'median req/s':>12} {'ratio':>7}   runs")
        for name, values in results.items():
            med = statistics.median(values)
            runs = ", ".join(f"{v:,.0f}" for v in values)
            print(f"{name:<18} {med:>12,.0f} {med / base:>7.2f}   {runs}")
    finally:
        receiver.terminate()


if __name__ == "__main__":
    main()
