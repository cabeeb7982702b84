"""Drill 9: dead and slow endpoints must not slow down the healthy ones.

One tenant with 50 healthy endpoints (the receiver answers at once) and, in the runs with
the bad ones, 5 dead endpoints (closed ports on 127.0.0.1: connection refused) and 5 that
answer after 10 s; every endpoint receives every event. An open-loop publisher at a
steady 20 events/s (1,000 healthy deliveries/s, about half of what one embedded process
delivers here with the publishing: at 40 events/s the baseline itself queues and its p99
swings between 180 and 510 ms from run to run); the figure is the publish -> receipt
latency at the healthy endpoints.
Embedded (``webhookd serve`` on SQLite, in-process engine), one server per run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import psutil
from ledger import Receipts, alternate, combined, quantiles, wait_for
from prometheus_client.parser import text_string_to_metric_families
from stack import Receiver, Server, free_port, sqlite_env, started
from traffic import Publisher, Tenant, add_endpoint, create_tenant

from webhookd.models import DeliveryStatus

HEALTHY = [f"/h{n}" for n in range(50)]
SLOW = [f"/slow{n}" for n in range(5)]
DEAD = [f"/dead{n}" for n in range(5)]
SLOW_DELAY = 10.0  # seconds before a slow endpoint answers 200
# A lease and a request timeout longer than the slow endpoints' answer, so that they
# succeed; the breaker at its defaults (5 failures, 30 s cool-down).
ENV = {"WEBHOOKD_LEASE_SECONDS": "30", "WEBHOOKD_REQUEST_TIMEOUT": "15"}
DRAIN = 180.0  # seconds the healthy deliveries may take to arrive once publishing ended
LIMIT = 1.10  # with the bad endpoints, the healthy p99 may be at most 10 % higher
# Counters of /metrics worth a look afterwards: (family, label that splits it or None).
COUNTERS = {
    "webhook_delivery_attempts": None,
    "webhook_delivery_failure": "reason",
    "webhook_deliveries_throttled": "reason",
    "webhook_breaker_transitions": "to",
    "webhook_dead_lettered": None,
}


def _add_bad_endpoints(api: str, tenant: Tenant, receiver: Receiver) -> None:
    for path in SLOW:
        add_endpoint(api, tenant, receiver.url(path), path)
    for path in DEAD:  # a port nobody listens on
        add_endpoint(api, tenant, f"http://127.0.0.1:{free_port()}{path}", path)


def _healthy_first_receipts(receipts: Receipts, accepted: dict[str, float]) -> dict:
    """(event, path) -> time of its first 2xx receipt, healthy endpoints, accepted events."""
    healthy = set(HEALTHY)
    first: dict[tuple[str, str], float] = {}
    for r in receipts.ok():
        if r["p"] in healthy and r["ev"] in accepted:
            first.setdefault((r["ev"], r["p"]), r["t"])
    return first


def _statuses(client: httpx.Client, endpoint_id: str) -> dict[str, str]:
    """event_id -> status of every delivery of the endpoint, through the delivery listing."""
    found: dict[str, str] = {}
    cursor = None
    while True:
        params = {
            "endpoint_id": endpoint_id,
            "limit": 100,
            **({"cursor": cursor} if cursor else {}),
        }
        page = client.get("/api/v1/deliveries", params=params)
        page.raise_for_status()
        body = page.json()
        found.update({d["event_id"]: d["status"] for d in body["items"]})
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def _bad_ledger(api: str, tenant: Tenant, receipts: Receipts, accepted: set[str]) -> dict:
    """What became of every accepted event at each bad endpoint, read through the API: its
    deliveries by status, the events without one (missing), those recorded as succeeded
    that the receiver never answered 2xx (unconfirmed), and the endpoint's health."""
    figures: dict[str, dict[str, object]] = {}
    with httpx.Client(base_url=api, headers={"X-API-Key": tenant.api_key}, timeout=30) as client:
        for endpoint_id, path in tenant.endpoints.items():
            if path in HEALTHY:
                continue
            statuses = _statuses(client, endpoint_id)
            read = client.get(f"/api/v1/tenants/{tenant.id}/endpoints/{endpoint_id}")
            read.raise_for_status()
            endpoint = read.json()
            received = {r["ev"] for r in receipts.ok(path)}  # read after the listing
            succeeded = {e for e, s in statuses.items() if s == DeliveryStatus.SUCCEEDED}
            figures[path] = {
                "statuses": dict(Counter(statuses[e] for e in accepted if e in statuses)),
                "missing": len(accepted - statuses.keys()),
                "unconfirmed": len(succeeded - received),
                "circuit": endpoint.get("circuit", "not in the API"),
                "disabled_reason": endpoint.get("disabled_reason", "not in the API"),
            }
    return figures


def _counters(api: str) -> dict[str, object]:
    """The engine's own account (COUNTERS) from its /metrics, summed over tenants."""
    text = httpx.get(f"{api}/metrics", timeout=30).text
    found: dict[str, object] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in COUNTERS:
            continue
        label = COUNTERS[family.name]
        totals: Counter[str] = Counter()
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[sample.labels.get(label, "") if label else ""] += int(sample.value)
        found[family.name] = dict(totals) if label else totals[""]
    return found


class _ServerCpu:
    """The server's CPU from the first publish until every healthy delivery arrived, per
    healthy delivery, and the machine's load meanwhile: the figure that other load on a
    shared machine moves least (a starved server's latency is queueing, not its work)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self._cpu()
        self.load = os.getloadavg()[0]

    def _cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def until_now(self, healthy: int) -> dict[str, float]:
        seconds = self._cpu() - self.start
        return {
            "server_cpu_s": round(seconds, 2),
            "server_cpu_ms_per_healthy": round(1000 * seconds / max(healthy, 1), 4),
            "load_avg_1m": [round(self.load, 2), round(os.getloadavg()[0], 2)],
        }


def _counts(
    publisher: Publisher, receipts: Receipts, healthy: dict, bad: dict[str, dict]
) -> dict[str, int]:
    """The drill's counts: healthy deliveries (receipts) and bad ones (the API's listing);
    lost: a healthy delivery that did not arrive, a bad one without a row, or a bad one
    recorded as succeeded that the receiver never answered."""
    healthy_expected = len(publisher.accepted) * len(HEALTHY)
    statuses: Counter[str] = Counter()
    for endpoint in bad.values():
        statuses.update(endpoint["statuses"])
    live = sum(statuses[s] for s in ("pending", "delivering", "retrying"))
    confirmed = sum(e["statuses"].get("succeeded", 0) - e["unconfirmed"] for e in bad.values())
    return {
        "accepted": len(publisher.accepted),
        "accepted_deliveries": healthy_expected + len(publisher.accepted) * len(bad),
        "delivered": len(healthy) + confirmed,
        "duplicates": receipts.duplicates(),
        "dlq": statuses["dead"],
        "live_at_end": live,
        "lost": healthy_expected
        - len(healthy)
        + sum(e["missing"] + e["unconfirmed"] for e in bad.values()),
    }


async def _publish(publisher: Publisher, rate: int, seconds: int) -> dict[str, float]:
    """``rate`` events/s for ``seconds`` s, open loop; the rate the API took them at."""
    start = time.time()
    await publisher.run_at((f"ev_{n}" for n in range(rate * seconds)), rate=rate)
    last = max(publisher.accepted.values(), default=start)
    return {
        "seconds": round(last - start, 1),
        "per_s": round(len(publisher.accepted) / max(last - start, 1e-3), 1),
    }


async def _run(logs: Path, *, bad: bool, rate: int, seconds: int) -> dict[str, object]:
    """One run: the healthy endpoints (and the bad ones), ``rate`` events/s for
    ``seconds`` s; then every healthy delivery must arrive, and every bad one be accounted
    for. Its counts, healthy latency and the bad endpoints' state."""
    logs.mkdir()
    with ExitStack() as stop:
        plan = orjson.dumps({path: {"delay": SLOW_DELAY} for path in SLOW}).decode()
        receiver = started(stop, Receiver(logs, plan))
        server = started(stop, Server("serve", {**sqlite_env(logs / "webhookd.db"), **ENV}, logs))
        tenant = create_tenant(server.url, "bad-endpoints", receiver.port, [])
        if bad:  # created first: each event's bad deliveries are ahead in the queue
            _add_bad_endpoints(server.url, tenant, receiver)
        for path in HEALTHY:
            add_endpoint(server.url, tenant, receiver.url(path), path)
        publisher = Publisher([server.url], tenant.api_key)
        receipts = Receipts(receiver.receipts)
        assert server.proc is not None
        cpu = _ServerCpu(server.proc.pid)
        published = await _publish(publisher, rate, seconds)
        expected = len(publisher.accepted) * len(HEALTHY)
        try:
            await asyncio.to_thread(
                wait_for,
                lambda: len(_healthy_first_receipts(receipts, publisher.accepted)) >= expected,
                "healthy deliveries",
                DRAIN,
            )
        except TimeoutError:
            pass  # counted as lost below
        healthy = _healthy_first_receipts(receipts, publisher.accepted)
        server_cpu = cpu.until_now(len(healthy))  # before the ledger's listing adds its own
        latency = quantiles([t - publisher.sent_at[e] for (e, _), t in healthy.items()])
        endpoints = _bad_ledger(server.url, tenant, receipts, set(publisher.accepted))
        counts = _counts(publisher, receipts, healthy, endpoints)
        figures = {
            "published": published,
            "healthy_latency": latency,
            "healthy_delivered": len(healthy),
            **server_cpu,
            "bad_endpoints": endpoints,
            "engine": _counters(server.url),
        }
    failures = []
    if counts["lost"]:
        failures.append(f"{counts['lost']} accepted deliveries lost or not delivered in time")
    if publisher.gave_up:
        failures.append(f"{len(publisher.gave_up)} publishes never answered")
    name = "bad-endpoints " + ("with_bad" if bad else "baseline")
    summary = publisher.summary()
    return {
        "drill": name,
        "passed": not failures,
        "failures": failures,
        **counts,
        "publisher": summary,
        "figures": figures,
    }


async def bad_endpoints(
    logs: Path, rate: int = 20, seconds: int = 60, rounds: int = 3
) -> dict[str, object]:
    """The healthy endpoints' p99 latency with 5 dead and 5 slow endpoints, against a
    baseline without them, alternating ``rounds`` times; passes if the median p99 with
    them is at most 10 % above the baseline's and no run lost anything."""

    async def run(variant: str, n: int) -> dict:
        return await _run(
            logs / f"{variant}-{n}", bad=variant == "with_bad", rate=rate, seconds=seconds
        )

    runs = await alternate(("baseline", "with_bad"), rounds, run)
    p99 = {v: [r["figures"]["healthy_latency"]["p99_ms"] for r in rs] for v, rs in runs.items()}
    cpu = {v: [r["figures"]["server_cpu_ms_per_healthy"] for r in rs] for v, rs in runs.items()}
    base, with_bad = (statistics.median(p99[v]) for v in ("baseline", "with_bad"))
    failures = []
    if not with_bad <= LIMIT * base:
        failures.append(
            f"healthy p99 {with_bad:.0f} ms with the bad endpoints vs {base:.0f} ms without "
            f"(median of {rounds}; limit +{100 * (LIMIT - 1):.0f} %)"
        )
    figures = {
        "load": f"{rate} events/s for {seconds} s, {len(HEALTHY)} healthy endpoints",
        "healthy_p99_ms": p99,
        "median_healthy_p99_ms": {"baseline": base, "with_bad": with_bad},
        "p99_increase_pct": round(100 * (with_bad / base - 1), 1) if base else None,
        # Beside the verdict: what the bad endpoints cost the process per healthy delivery.
        "server_cpu_ms_per_healthy": cpu,
        "median_server_cpu_ms_per_healthy": {v: statistics.median(c) for v, c in cpu.items()},
        "runs": {v: [r["figures"] for r in rs] for v, rs in runs.items()},
    }
    return combined("bad-endpoints", runs, failures, figures)


# -- what the dead endpoints' deliveries cost publish and claim -------------------------------


async def _publish_and_claim_cpu(events: int, held: int) -> dict[str, float]:
    """This process's CPU (``time.process_time``: other load moves it little) to publish
    ``events`` events, 10 per transaction, to ``len(HEALTHY)`` endpoints plus ``held``
    endpoints whose circuit is open, claiming after each batch everything due (100 rows a
    claim, nothing attempted): ms per event, and the rows claimed and handed back."""
    import datetime as dt
    import tempfile

    from sqlalchemy import update
    from stack import BASE_ENV

    from webhookd.config import Settings
    from webhookd.db import Database, utcnow
    from webhookd.delivery.fairness import FairClock
    from webhookd.delivery.service import DeliveryService
    from webhookd.delivery.store import create_store
    from webhookd.event.schemas import EventCreate
    from webhookd.event.service import publish_events
    from webhookd.migrate import upgrade
    from webhookd.models import Circuit, Endpoint
    from webhookd.models import Tenant as TenantRow

    class _Queue:  # the engine is not running: nothing to wake
        async def start(self) -> None: ...

        def submit(self, delivery_ids: object, from_key: object = None) -> None: ...

        async def stop(self) -> None: ...

    env = {k.removeprefix("WEBHOOKD_").lower(): v for k, v in BASE_ENV.items()}
    settings = Settings(**{**env, "database_url": f"sqlite:///{tempfile.mkdtemp()}/w.db"})
    await asyncio.to_thread(upgrade, settings)
    db = Database(settings)
    store = create_store("sqlite", decrypt=str)
    service = DeliveryService(store=store, queue=_Queue(), clock=FairClock())
    async with db.write() as session:
        row = TenantRow(name="t", email="t@example.com", rate_limit=10, api_key_hash="t",
                        api_key_prefix="whk_", secret_encrypted="x")  # fmt: skip
        session.add(row)
        await session.flush()
        endpoints = [
            Endpoint(tenant_id=row.id, url=f"https://e.example/{n}", event_types=[])
            for n in range(len(HEALTHY) + held)
        ]
        session.add_all(endpoints)
        await session.flush()
        until = utcnow() + dt.timedelta(hours=1)
        await session.execute(
            update(Endpoint)
            .where(Endpoint.id.in_([e.id for e in endpoints[:held]]))
            .values(circuit=Circuit.OPEN, circuit_until=until, circuit_cooldown=3600.0)
        )
        tenant_id = row.id
    cpu, claimed, handed_back = 0.0, 0, 0
    lease = dt.timedelta(minutes=10)
    for batch in range(events // 10):
        start = time.process_time()
        async with db.write() as session:
            published = [
                (tenant_id, EventCreate(event_id=f"e{batch}_{n}", event_type="x", payload={}))
                for n in range(10)
            ]
            await publish_events(session, deliveries=service, batch=published)
        while True:
            async with db.write_connection() as conn:
                claim = await store.claim_due(
                    conn, owner="w", now=utcnow(), lease=lease, limit=100, probe=False
                )
            claimed, handed_back = claimed + len(claim.jobs), handed_back + len(claim.put_back)
            if len(claim.jobs) + len(claim.put_back) < 100:
                break
        cpu += time.process_time() - start
    await db.dispose()
    return {"ms_per_event": round(1000 * cpu / events, 3), "claimed": claimed,
            "handed_back": handed_back}  # fmt: skip


if __name__ == "__main__":  # python bench/drills/bad_endpoints.py [rounds]
    import sys

    for n in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        for held in (0, len(DEAD)):
            figures = asyncio.run(_publish_and_claim_cpu(500, held))
            print(f"round {n + 1}, {held} endpoints with an open circuit: {figures}")
