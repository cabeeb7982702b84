"""Tenants and publishers, through the public API only.

A publisher retries every publish that got no answer (connection refused or cut, timeout,
5xx) with the same event_id until it is answered: publishing is idempotent per event_id,
so a retry of an event that was in fact committed answers ``200 duplicate`` and delivers
nothing new. Events sent at least once without an answer (connection cut, timeout, 5xx;
not a refused connection, where nothing was sent) are counted as ``unknown``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp
import httpx
from stack import ADMIN_KEY

EVENT_TYPE = "drill.event"
PAYLOAD = "x" * 200


@dataclass
class Tenant:
    id: str  # tnt_…
    api_key: str
    endpoints: dict[str, str] = field(default_factory=dict)  # endpoint id (ep_…) -> path


def create_tenant(api: str, name: str, receiver_port: int, paths: Iterable[str]) -> Tenant:
    """A tenant with no practical rate limit and one endpoint per receiver path."""
    created = httpx.post(
        f"{api}/api/v1/tenants",
        headers={"X-Admin-Key": ADMIN_KEY},
        json={"name": name, "email": f"{name}@example.com", "rate_limit": 1_000_000},
        timeout=30,
    )
    created.raise_for_status()
    tenant = Tenant(created.json()["id"], created.json()["api_key"])
    for path in paths:
        add_endpoint(api, tenant, f"http://127.0.0.1:{receiver_port}{path}", path)
    return tenant


def add_endpoint(api: str, tenant: Tenant, url: str, path: str, **fields: object) -> str:
    """Subscribe ``url`` to every event type of ``tenant``, known to the ledger as ``path``
    (the receiver path, or a name for a URL no receiver serves); the endpoint's id.
    ``fields``: more of the endpoint's settings (``event_types``, ``retry_schedule``, ...)."""
    endpoint = httpx.post(
        f"{api}/api/v1/tenants/{tenant.id}/endpoints",
        headers={"X-API-Key": tenant.api_key},
        json={"url": url, **fields},
        timeout=30,
    )
    endpoint.raise_for_status()
    endpoint_id: str = endpoint.json()["id"]
    tenant.endpoints[endpoint_id] = path
    return endpoint_id


class PublishError(RuntimeError):
    pass


@dataclass
class Publisher:
    """Publishes events round-robin over ``urls``; records what was accepted and when."""

    urls: list[str]
    api_key: str
    retry_for: float = 180.0  # give up on one event after this long without an answer
    retry_delay: float = 0.25  # between two tries of one event
    accepted: dict[str, float] = field(default_factory=dict)  # event_id -> time.time()
    sent_at: dict[str, float] = field(default_factory=dict)  # first try
    # Sent but got no answer (cut connection, timeout, 5xx) at least once: committed or not?
    unknown: set[str] = field(default_factory=set)
    retried_duplicate: set[str] = field(default_factory=set)  # ...and was in fact committed
    failures: Counter[str] = field(default_factory=Counter)  # why tries got no answer
    gave_up: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._next_url = itertools.cycle(self.urls)

    async def publish(
        self, session: aiohttp.ClientSession, event_id: str, event_type: str = EVENT_TYPE
    ) -> None:
        body = {"event_id": event_id, "event_type": event_type, "payload": {"pad": PAYLOAD}}
        self.sent_at[event_id] = time.time()
        deadline = time.monotonic() + self.retry_for
        while True:
            url = next(self._next_url)
            refused = False
            try:
                async with session.post(f"{url}/api/v1/events", json=body) as response:
                    text = await response.text()
                    if response.status in (200, 202):
                        self.accepted[event_id] = time.time()
                        if response.status == 200 and event_id in self.unknown:
                            self.retried_duplicate.add(event_id)
                        return
                    if response.status < 500:
                        raise PublishError(f"{event_id}: HTTP {response.status} {text[:300]}")
                    self.failures[f"HTTP {response.status}"] += 1
            except aiohttp.ClientConnectorError as exc:  # never sent: nothing to wonder about
                self.failures[type(exc).__name__] += 1
                refused = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.failures[type(exc).__name__] += 1
            if not refused:
                self.unknown.add(event_id)
            if time.monotonic() > deadline:
                self.gave_up.add(event_id)
                return
            await asyncio.sleep(self.retry_delay)

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            headers={"X-API-Key": self.api_key},
            timeout=aiohttp.ClientTimeout(total=15),
            connector=aiohttp.TCPConnector(limit=0),
        )

    async def run(self, event_ids: Iterable[str], concurrency: int = 20) -> None:
        """Publish as fast as ``concurrency`` publishers go."""
        ids = iter(event_ids)

        async def one_publisher(session: aiohttp.ClientSession) -> None:
            for event_id in ids:
                await self.publish(session, event_id)

        async with self.session() as session:
            await asyncio.gather(*(one_publisher(session) for _ in range(concurrency)))

    async def run_at(self, event_ids: Iterable[str], rate: float, in_flight: int = 64) -> None:
        """Publish ``rate`` events per second on a fixed schedule (each on its own task),
        with at most ``in_flight`` publishes waiting for an answer (the schedule slips when
        the API is slower than that)."""
        start = time.monotonic()
        slots = asyncio.Semaphore(in_flight)
        tasks: list[asyncio.Task[None]] = []

        async def one(session: aiohttp.ClientSession, event_id: str) -> None:
            try:
                await self.publish(session, event_id)
            finally:
                slots.release()

        async with self.session() as session:
            for n, event_id in enumerate(event_ids):
                await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
                await slots.acquire()
                tasks.append(asyncio.create_task(one(session, event_id)))
            await asyncio.gather(*tasks)

    def summary(self) -> dict[str, object]:
        return {
            "accepted": len(self.accepted),
            "unknown": len(self.unknown),
            "unknown_already_committed": len(self.retried_duplicate),
            "publish_failures": dict(self.failures),
            "gave_up": len(self.gave_up),
        }
