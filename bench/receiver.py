"""The benchmark receiver: a raw ASGI app under uvicorn (uvloop, httptools), in its own process.

Every POST is answered 200 (after the configured delay) and recorded: its arrival time
(``time.monotonic()``, the same system-wide clock as the harness), its ``webhook-id`` (a
second POST with the same id is a duplicate) and the ``event_id`` of its JSON body, per
path (one path per endpoint). One POST in ``sample`` has its Standard Webhooks signature
verified with the tenant's secret. Control paths (GET):

- ``/_bench/reset?delay=0.05&secret=whsec_…&sample=50&detail=1`` forgets everything and
  sets the response delay, the secret and the sampling (``detail=0``: no per-event record);
- ``/_bench/stats``: counts (posts, unique ids, duplicates, signatures checked / failed);
- ``/_bench/arrivals``: sorted arrival times, and with detail the first arrival of each
  ``event_id`` and how many times each (path, event_id) arrived.

    python -m bench.receiver PORT
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson

from bench.procs import LOCALHOST, BenchError, Procs, free_port, serve_local
from webhookd.verify import WebhookVerificationError, verify


class State:
    def __init__(
        self, delay: float = 0.0, secret: str = "", sample: int = 50, detail: bool = True
    ) -> None:
        self.delay = delay
        self.secret = secret
        self.sample = max(1, sample)
        self.detail = detail
        self.posts = 0
        self.ids: Counter[bytes] = Counter()
        self.times: list[float] = []
        self.first_arrival: dict[str, float] = {}
        self.per_endpoint: Counter[tuple[str, str]] = Counter()
        self.sig_checked = 0
        self.sig_failed = 0
        self.sig_errors: list[str] = []

    def record(self, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        now = time.monotonic()
        self.posts += 1
        self.times.append(now)
        webhook_id = next((v for k, v in headers if k == b"webhook-id"), b"")
        self.ids[webhook_id] += 1
        if self.detail:
            event_id = str(orjson.loads(body).get("event_id"))
            self.first_arrival.setdefault(event_id, now)
            self.per_endpoint[(path, event_id)] += 1
        if self.secret and self.posts % self.sample == 1 % self.sample:
            self.sig_checked += 1
            try:
                verify(body, {k.decode(): v.decode() for k, v in headers}, self.secret)
            except WebhookVerificationError as exc:
                self.sig_failed += 1
                if len(self.sig_errors) < 5:
                    self.sig_errors.append(str(exc))

    def stats(self) -> dict[str, Any]:
        return {
            "posts": self.posts,
            "unique": len(self.ids),
            "duplicates": self.posts - len(self.ids),
            "sig_checked": self.sig_checked,
            "sig_failed": self.sig_failed,
            "sig_errors": self.sig_errors,
            "first": self.times[0] if self.times else None,
            "last": self.times[-1] if self.times else None,
        }

    def arrivals(self) -> dict[str, Any]:
        return {
            "times": sorted(self.times),
            "first_arrival": self.first_arrival,
            "per_endpoint": [[p, e, n] for (p, e), n in self.per_endpoint.items()],
        }


STATE = State()


def _reset(query: bytes) -> State:
    params = {k: v[0] for k, v in parse_qs(query.decode()).items()}
    return State(
        delay=float(params.get("delay", 0)),
        secret=params.get("secret", ""),
        sample=int(params.get("sample", 50)),
        detail=params.get("detail", "1") == "1",
    )


async def _answer(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global STATE
    if scope["type"] != "http":
        return
    path = scope["path"]
    if scope["method"] == "GET":
        if path == "/_bench/reset":
            STATE = _reset(scope["query_string"])
            body = b"{}"
        elif path == "/_bench/stats":
            body = orjson.dumps(STATE.stats())
        elif path == "/_bench/arrivals":
            body = orjson.dumps(STATE.arrivals())
        else:
            body = b'{"ok": true}'
        await _answer(send, 200, body, b"application/json")
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    state = STATE
    state.record(path, scope["headers"], b"".join(chunks))  # arrival: before the delay
    if state.delay:
        await asyncio.sleep(state.delay)
    await _answer(send, 200, b"ok", b"text/plain")


class ReceiverClient:
    """The harness side: start the receiver in a child process and drive its control paths."""

    def __init__(self, procs: Procs) -> None:
        self.port = free_port()
        self.base = f"http://{LOCALHOST}:{self.port}"
        proc = procs.python("receiver", ["-m", "bench.receiver", str(self.port)])
        procs.wait_http(proc, f"{self.base}/_bench/stats", timeout=30)
        self.pid = proc.pid

    def url(self, path: str = "/hook") -> str:
        return f"{self.base}{path}"

    def reset(
        self, *, delay: float = 0.0, secret: str = "", sample: int = 50, detail: bool = True
    ) -> None:
        params = {"delay": delay, "secret": secret, "sample": sample, "detail": int(detail)}
        httpx.get(f"{self.base}/_bench/reset", params=params, timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.base}/_bench/stats", timeout=30).json())

    def arrivals(self) -> dict[str, Any]:
        return dict(orjson.loads(httpx.get(f"{self.base}/_bench/arrivals", timeout=120).content))

    def wait_for(self, posts: int, *, timeout: float, what: str) -> dict[str, Any]:
        """Wait until ``posts`` unique deliveries arrived; their stats. Fails after ``timeout``
        s, or sooner if nothing new arrived for a whole minute."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while True:
            stats = self.stats()
            if stats["unique"] >= posts:
                return stats
            now = time.monotonic()
            if stats["unique"] != last:
                last, last_change = stats["unique"], now
            if now > deadline or now - last_change > 60:
                raise BenchError(
                    f"{what}: {stats['unique']:,} of {posts:,} deliveries arrived "
                    f"(stalled or over {timeout:.0f} s)"
                )
            time.sleep(0.05)


def steady_rate(times: list[float], trim: float = 0.05) -> float:
    """Deliveries/s between the arrivals at ``trim`` and ``1 - trim`` of the count: the
    start-up ramp (processes starting, connections opening) and the tail are left out."""
    if len(times) < 20:
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    lo, hi = int(len(times) * trim), int(len(times) * (1 - trim)) - 1
    return (hi - lo) / (times[hi] - times[lo]) if times[hi] > times[lo] else 0.0


def check_signatures(stats: dict[str, Any], what: str) -> None:
    if stats["sig_failed"]:
        raise BenchError(f"{what}: {stats['sig_failed']} bad signatures: {stats['sig_errors']}")
    if not stats["sig_checked"]:
        raise BenchError(f"{what}: no signature was checked")


def main() -> None:
    serve_local(app, int(sys.argv[1]), lifespan="off", backlog=4096)


if __name__ == "__main__":
    main()
