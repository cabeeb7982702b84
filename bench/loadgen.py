"""Load generators for POST /api/v1/events, the same for webhookd and for the ingest ceiling.

``ingest()`` runs ``wrk`` with ``bench/ingest.lua`` (one C thread costs far less CPU than a
Python client on two cores), or an aiohttp client when wrk is not installed. ``paced()`` is
an open-loop publisher at a fixed rate (for publish → receipt latency), ``publish()`` sends
an exact list of events and returns those accepted (for correctness checks).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import uvloop

from bench.config import RunConfig
from bench.procs import BenchError

LUA = Path(__file__).with_name("ingest.lua")
PAD = "x" * 900


def event_body(event_id: str, n: int) -> bytes:
    return (
        f'{{"event_id":"{event_id}","event_type":"bench.event",'
        f'"payload":{{"n":{n},"data":"{PAD}"}}}}'
    ).encode()


@dataclass
class IngestResult:
    rate: float  # accepted requests/s
    p50_ms: float
    p99_ms: float
    requests: int
    non2xx: int
    socket_errors: int
    generator: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def ingest(
    url: str,
    api_key: str,
    *,
    duration: float,
    connections: int = 64,
    prefix: str,
    max_events: int = 0,
    force_python: bool = False,
) -> IngestResult:
    """Closed-loop load for ``duration`` s (or until ``max_events``); fails on any non-2xx."""
    if shutil.which("wrk") and not force_python:
        result = _wrk(url, api_key, duration, connections, prefix, max_events)
    else:
        result = uvloop.run(_python(url, api_key, duration, connections, prefix, max_events))
    if result.non2xx:
        raise BenchError(f"ingest at {url}: {result.non2xx} non-2xx answers of {result.requests}")
    if result.requests == 0:
        raise BenchError(f"ingest at {url}: no request completed")
    return result


def ingest_run(
    cfg: RunConfig, url: str, api_key: str, *, max_events: int = 0, duration: float | None = None
) -> IngestResult:
    """``ingest()`` with the run's settings and a fresh event_id prefix."""
    return ingest(
        url,
        api_key,
        duration=cfg.ingest_seconds if duration is None else duration,
        connections=cfg.connections,
        prefix=uuid.uuid4().hex[:8],
        max_events=max_events,
        force_python=cfg.python_loadgen,
    )


def _wrk(
    url: str, api_key: str, duration: float, connections: int, prefix: str, max_events: int
) -> IngestResult:
    env = {
        **os.environ,
        "BENCH_API_KEY": api_key,
        "BENCH_PREFIX": prefix,
        "BENCH_MAX": str(max_events),
    }
    args = ["wrk", "-t1", f"-c{connections}", f"-d{math.ceil(duration)}s", "--timeout", "10s"]
    done = subprocess.run(
        [*args, "-s", str(LUA), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"]
    seconds = raw["duration_us"] / 1e6
    ok = raw["responses"] - raw["non2xx"]
    return IngestResult(
        rate=ok / seconds,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        requests=raw["responses"],
        non2xx=raw["non2xx"],
        socket_errors=errors,
        generator="wrk -t1",
    )


async def _python(
    url: str, api_key: str, duration: float, connections: int, prefix: str, max_events: int
) -> IngestResult:
    latencies: list[float] = []
    non2xx = 0
    counter = 0
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    deadline = time.perf_counter() + duration

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal counter, non2xx
        while time.perf_counter() < deadline and not (max_events and counter >= max_events):
            counter += 1
            body = event_body(f"{prefix}-py-{counter}", counter)
            start = time.perf_counter()
            async with session.post(f"{url}/api/v1/events", data=body, headers=headers) as r:
                await r.read()
                non2xx += not 200 <= r.status < 300
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return IngestResult(
        rate=(len(latencies) - non2xx) / elapsed,
        p50_ms=q[49] * 1000,
        p99_ms=q[98] * 1000,
        requests=len(latencies),
        non2xx=non2xx,
        socket_errors=0,
        generator="aiohttp (python)",
    )


async def _post(session: aiohttp.ClientSession, url: str, api_key: str, body: bytes) -> int:
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    async with session.post(f"{url}/api/v1/events", data=body, headers=headers) as r:
        await r.read()
        return r.status


def publish(url: str, api_key: str, event_ids: list[str], concurrency: int = 20) -> list[str]:
    """Publish exactly these events; the ids answered 202. Fails on any other answer."""

    async def run() -> list[str]:
        accepted: list[str] = []
        todo = iter(enumerate(event_ids))

        async def worker(session: aiohttp.ClientSession) -> None:
            for n, event_id in todo:
                status = await _post(session, url, api_key, event_body(event_id, n))
                if status != 202:
                    raise BenchError(f"publish {event_id}: HTTP {status}")
                accepted.append(event_id)

        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return accepted

    return uvloop.run(run())


def paced(
    url: str, api_key: str, *, rate: float, duration: float, prefix: str
) -> tuple[dict[str, tuple[float, float]], int]:
    """Open loop: event i is sent at start + i/rate whatever the answers. Returns the send
    and answer times (``time.monotonic()``) of each event answered 202, and how many got no
    answer within 2 minutes (an overloaded server: counted, not fatal). Fails on any other
    status."""

    async def run() -> tuple[dict[str, tuple[float, float]], int]:
        sent: dict[str, tuple[float, float]] = {}
        failures: list[str] = []
        unanswered = 0
        total = int(rate * duration)

        async def one(session: aiohttp.ClientSession, n: int) -> None:
            nonlocal unanswered
            event_id = f"{prefix}-{n}"
            body = event_body(event_id, n)
            at = time.monotonic()
            try:
                status = await _post(session, url, api_key, body)
            except (aiohttp.ClientError, TimeoutError):
                unanswered += 1
                return
            if status == 202:
                sent[event_id] = (at, time.monotonic())
            else:
                failures.append(f"{event_id}: HTTP {status}")

        timeout = aiohttp.ClientTimeout(total=120)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            start = time.monotonic()
            tasks = []
            for n in range(total):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(session, n)))
            await asyncio.gather(*tasks)
        if failures:
            raise BenchError(f"paced publish: {len(failures)} failures, e.g. {failures[:3]}")
        if not sent:
            raise BenchError(f"paced publish: none of {total} events was answered")
        return sent, unanswered

    return uvloop.run(run())
