"""Delivery ceiling (a): a bare aiohttp client in one process (uvloop) POSTing signed webhook
bodies of the same shape and size as webhookd's, one HMAC signing per request (both
signature headers, as webhookd sends them), at webhookd's delivery concurrency.

    python -m bench.ceiling_client URL --requests 20000 --concurrency 200 --secret whsec_…

Prints one JSON line: requests, seconds, rate (client side; the harness reads the rate at the
receiver).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import time

import aiohttp
import orjson
import uvloop

from bench.loadgen import PAD
from webhookd.delivery.signing import signature_headers


async def run(url: str, total: int, concurrency: int, secret: str) -> dict[str, float]:
    created = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    left = total

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            n = total - left
            body = orjson.dumps(
                {
                    "event_id": f"ceil-{n}",
                    "event_type": "bench.event",
                    "payload": {"n": n, "data": PAD},
                    "created_at": created,
                }
            )
            headers = signature_headers(
                secret=secret, msg_id=f"ceil_{n}", timestamp=int(time.time()), body=body
            )
            headers["Content-Type"] = "application/json"
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"receiver answered {response.status}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"requests": total, "seconds": seconds, "rate": total / seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args()
    result = uvloop.run(run(args.url, args.requests, args.concurrency, args.secret))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
