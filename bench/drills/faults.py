"""Drills 1-6: a process or service fails mid-run; every accepted event is still delivered.

Each drill starts its own receiver, webhookd processes and tenant, publishes through the API
while the fault happens, waits until the database holds no live delivery, then counts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import stack
from ledger import Ledger, Receipts, latency_ms, outcome, wait_for
from stack import DB, DistributedServices, Receiver, Server, Worker, sqlite_env, started
from traffic import Publisher, create_tenant

SETTLE = 240.0  # seconds allowed for everything to finish after publishing ended


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{n}" for n in range(count)]


def _expected(publisher: Publisher, paths: list[str]) -> set[tuple[str, str]]:
    return {(event_id, path) for event_id in publisher.accepted for path in paths}


def _tenant(
    receiver: Receiver, urls: list[str], db_url: str, name: str
) -> tuple[Publisher, Ledger]:
    """A tenant with one endpoint (receiver path /hook), its publisher and its ledger."""
    tenant = create_tenant(urls[0], name, receiver.port, ["/hook"])
    ledger = Ledger(Receipts(receiver.receipts), db_url, set(), [tenant])
    return Publisher(urls, tenant.api_key), ledger


def _latency(
    ledger: Ledger, publisher: Publisher, window: tuple[float, float]
) -> dict[str, float | int]:
    return latency_ms(ledger.receipts, publisher.sent_at, publisher.accepted, window)


async def _finish(
    name: str, ledger: Ledger, api: str, publisher: Publisher, figures: dict[str, object]
) -> dict[str, object]:
    """Wait until nothing is live any more, then count. Adds the publish -> receipt
    latency of all events (the max shows what the fault cost the unluckiest one)."""
    ledger.expected = _expected(publisher, ["/hook"])
    settled = await asyncio.to_thread(ledger.wait_settled, SETTLE)
    figures["latency"] = _latency(ledger, publisher, (0, float("inf")))
    return outcome(
        name, ledger, api, settled=settled, publisher=publisher.summary(), figures=figures
    )


async def _kill_mid_run(
    publisher: Publisher, ledger: Ledger, events: int, kill: Callable[[], None]
) -> int:
    """Publish ``events`` with 20 concurrent publishers; once a third of them arrived, run
    ``kill()`` (in a thread) while publishing goes on. Returns the receipts before the kill."""
    publishing = asyncio.create_task(publisher.run(_ids("evt", events), concurrency=20))
    third = events // 3
    await asyncio.to_thread(
        wait_for, lambda: len(ledger.receipts.ok()) >= third, "a third delivered", 180
    )
    before_kill = len(ledger.receipts.ok())
    await asyncio.to_thread(kill)
    await publishing
    return before_kill


async def embedded_sigkill(logs: Path, events: int = 3000) -> dict[str, object]:
    """SIGKILL ``webhookd serve`` (SQLite) mid-run, restart it on the same database."""
    with ExitStack() as stop:
        receiver = started(stop, Receiver(logs, '{"/hook": {"delay": 0.02}}'))
        server = started(stop, Server("serve", sqlite_env(logs / "webhookd.db"), logs))
        publisher, ledger = _tenant(receiver, [server.url], server.env[DB], "sigkill")
        down: list[float] = []

        def kill_and_restart() -> None:
            server.kill()
            killed = time.monotonic()
            time.sleep(1)
            server.start()
            down.append(time.monotonic() - killed)

        before = await _kill_mid_run(publisher, ledger, events, kill_and_restart)
        figures: dict[str, object] = {
            "received_before_kill": before,
            "down_seconds": round(down[0], 1),
        }
        return await _finish("embedded-sigkill", ledger, server.url, publisher, figures)


class Distributed:
    """API process(es) + Celery workers on a fresh database and vhost."""

    def __init__(self, stop: ExitStack, logs: Path, *, apis: int = 1, workers: int = 2) -> None:
        self.services = stop.enter_context(DistributedServices())
        env = self.services.env
        self.apis = [Server(f"api{n + 1}", env, logs) for n in range(apis)]
        self.workers = [Worker(f"worker{n + 1}", env, logs) for n in range(workers)]
        for proc in (*self.apis, *self.workers):
            started(stop, proc)

    @property
    def db_url(self) -> str:
        return self.services.db_url

    @property
    def url(self) -> str:
        return self.apis[0].url


async def worker_sigkill(logs: Path, events: int = 3000) -> dict[str, object]:
    """SIGKILL one of two Celery workers mid-run; the other (and the lease) recover."""
    with ExitStack() as stop:
        receiver = started(stop, Receiver(logs, '{"/hook": {"delay": 0.02}}'))
        dist = Distributed(stop, logs)
        publisher, ledger = _tenant(receiver, [dist.url], dist.db_url, "workerkill")
        before = await _kill_mid_run(publisher, ledger, events, dist.workers[0].kill)
        figures: dict[str, object] = {"received_before_kill": before}
        return await _finish("worker-sigkill", ledger, dist.url, publisher, figures)


async def _steady_with_fault(
    publisher: Publisher,
    events: int,
    rate: float,
    fault_at: float,
    fault: Callable[[], tuple[float, float]],
) -> tuple[float, float]:
    """Publish ``events`` at ``rate``/s; ``fault_at`` seconds in, run ``fault()`` (blocking,
    in a thread) while publishing continues. ``fault`` returns when (time.time()) the
    service went down and came back."""
    publishing = asyncio.create_task(publisher.run_at(_ids("evt", events), rate))
    await asyncio.sleep(fault_at)
    window = await asyncio.to_thread(fault)
    if publishing.done():
        raise RuntimeError("publishing ended before the fault did: publish more events")
    await publishing
    return window


def _outage(
    stop: Callable[[], None], start: Callable[[], None], seconds: float
) -> Callable[[], tuple[float, float]]:
    """A fault: ``stop()``, ``seconds`` of outage, ``start()`` (always, even on error)."""

    def fault() -> tuple[float, float]:
        try:
            stop()
            down = time.time()
            time.sleep(seconds)
        finally:
            start()
        return down, time.time()

    return fault


def _accepted_between(publisher: Publisher, t0: float, t1: float) -> int:
    return sum(1 for at in publisher.accepted.values() if t0 <= at <= t1)


async def rabbitmq_outage(logs: Path, events: int = 6000, outage: float = 20.0) -> dict:
    """Stop RabbitMQ for ``outage`` s mid-run (10 s into 60 s of publishing at 100/s);
    publishing goes on (the DB is the truth)."""
    with ExitStack() as stop:
        receiver = started(stop, Receiver(logs))
        dist = Distributed(stop, logs)
        publisher, ledger = _tenant(receiver, [dist.url], dist.db_url, "rabbit")
        fault = _outage(stack.rabbitmq_stop, stack.rabbitmq_start, outage)
        down, up = await _steady_with_fault(publisher, events, 100, 10, fault)
        figures: dict[str, object] = {
            "broker_down_seconds": round(up - down, 1),
            "accepted_while_broker_down": _accepted_between(publisher, down, up),
            "delivered_while_broker_down": sum(
                1 for r in ledger.receipts.ok() if down <= r["t"] <= up
            ),
        }
        result = await _finish("rabbitmq-outage", ledger, dist.url, publisher, figures)
        # Latency tells whether deliveries came through the broker (ms) or only from the
        # workers' database sweep (up to WEBHOOKD_POLL_INTERVAL, 1 s) in each phase.
        figures["latency_before"] = _latency(ledger, publisher, (0, down))
        figures["latency_broker_down"] = _latency(ledger, publisher, (down, up))
        figures["latency_after"] = _latency(ledger, publisher, (up + 5, float("inf")))
        return result


async def postgres_restart(logs: Path, events: int = 3000) -> dict[str, object]:
    """Restart PostgreSQL mid-run; the publisher retries what failed, same event_id."""
    with ExitStack() as stop:
        receiver = started(stop, Receiver(logs))
        dist = Distributed(stop, logs)
        publisher, ledger = _tenant(receiver, [dist.url], dist.db_url, "pgrestart")

        def restart() -> tuple[float, float]:
            began = time.time()
            stack.postgres_restart()
            return began, time.time()

        began, ended = await _steady_with_fault(publisher, events, 100, 10, restart)
        figures: dict[str, object] = {"restart_seconds": round(ended - began, 1)}
        return await _finish("postgres-restart", ledger, dist.url, publisher, figures)


def _ids_until(prefix: str, done: asyncio.Event) -> Iterator[str]:
    n = 0
    while not done.is_set():
        yield f"{prefix}_{n}"
        n += 1


async def api_restart(logs: Path) -> dict[str, object]:
    """Two API processes, publisher round-robin at 100 events/s; restart each mid-publish:
    SIGTERM api1, SIGTERM api2, then SIGKILL api1, each on the same port; publishing goes
    on until 5 s after the last restart."""
    with ExitStack() as stop:
        receiver = started(stop, Receiver(logs))
        dist = Distributed(stop, logs, apis=2, workers=1)
        publisher, ledger = _tenant(receiver, [a.url for a in dist.apis], dist.db_url, "apirestart")
        done = asyncio.Event()
        publishing = asyncio.create_task(publisher.run_at(_ids_until("evt", done), 100))
        api1, api2 = dist.apis
        restarts: dict[str, object] = {}
        for n, (api, signal) in enumerate(
            ((api1, "SIGTERM"), (api2, "SIGTERM"), (api1, "SIGKILL"))
        ):
            await asyncio.sleep(5)
            failures_before = Counter(publisher.failures)
            began = time.monotonic()
            await asyncio.to_thread(api.stop if signal == "SIGTERM" else api.kill)
            stopped = time.monotonic()
            await asyncio.to_thread(api.start)
            restarts[f"{n + 1}: {api.name} {signal}"] = {
                "stop_s": round(stopped - began, 1),
                "start_s": round(time.monotonic() - stopped, 1),
                "publish_failures": dict(Counter(publisher.failures) - failures_before),
            }
        await asyncio.sleep(5)
        done.set()
        await publishing
        figures: dict[str, object] = {"restarts": restarts}
        return await _finish("api-restart", ledger, dist.url, publisher, figures)


async def receiver_outage(logs: Path, events: int = 3000, outage: float = 30.0) -> dict:
    """The receiver is down (port refusing) for ``outage`` s; retries deliver everything,
    nothing is dead-lettered. Default retry policy: attempts at 0, 1, 3, 7, 15, 31, 63 s."""
    with ExitStack() as stop:
        receiver = started(stop, Receiver(logs))
        server = started(stop, Server("serve", sqlite_env(logs / "webhookd.db"), logs))
        publisher, ledger = _tenant(receiver, [server.url], server.env[DB], "outage")
        fault = _outage(receiver.stop, receiver.start, outage)
        down, up = await _steady_with_fault(publisher, events, 50, 10, fault)
        figures: dict[str, object] = {"receiver_down_seconds": round(up - down, 1)}
        result = await _finish("receiver-outage", ledger, server.url, publisher, figures)
        attempts = [r["a"] for r in ledger.receipts.ok()]
        figures["delivered_after_retries"] = sum(1 for a in attempts if a > 1)
        figures["max_attempt"] = max(attempts, default=0)
        figures["retry_policy"] = "base 1 s, max 32 s, 7 attempts (the defaults)"
        if result["dlq"]:  # nothing should be dead-lettered: the retries outlast the outage
            result["passed"] = False
            result["failures"].append(f"{result['dlq']} deliveries dead-lettered")  # type: ignore[union-attr]
        return result
