"""Distributed scenarios: a fresh PostgreSQL database, Redis rate limiter, a fresh RabbitMQ
vhost and queue; one ``webhookd serve`` API process with the broker configured, then 1 and 2
``webhookd worker`` processes draining backlogs, with an instant and a 50 ms receiver."""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench.config import RunConfig
from bench.loadgen import ingest_run
from bench.procs import BenchError, Procs, ResourceSampler, tail
from bench.receiver import ReceiverClient, check_signatures, steady_rate
from bench.results import medians
from bench.services import fresh_postgres, fresh_vhost, wait_for_service
from bench.webhookd_proc import (
    PENDING_SQL,
    REDIS_URL,
    base_env,
    create_tenant,
    pg,
    start_serve,
    start_worker,
)

CYCLES = ((1, False), (2, False), (1, True), (2, True))  # (workers, slow receiver)


def drain_name(workers: int, slow: bool) -> str:
    return f"distributed.drain_{workers}w" + ("_50ms" if slow else "")


def distributed_round(cfg: RunConfig, receiver: ReceiverClient) -> dict[str, dict[str, Any]]:
    """One round: for each cycle, ingest a backlog with no worker running (the API alone on
    PostgreSQL), then start N workers and time the drain at the receiver."""
    wait_for_service("Redis", 6379)
    results: dict[str, dict[str, Any]] = {}
    ingests: list[dict[str, Any]] = []
    with fresh_postgres() as dsn, fresh_vhost() as broker, Procs() as procs:
        env = base_env(
            dsn,
            broker_url=broker,
            redis_url=REDIS_URL,
            worker_queue=f"webhookd_bench_{uuid.uuid4().hex[:8]}",
        )
        server = start_serve(procs, env, workers=False)
        tenant = create_tenant(server.url, [receiver.url("/hook/0")])
        for workers, slow in CYCLES:
            with ResourceSampler([server.pid]) as res:
                result = ingest_run(
                    cfg,
                    server.url,
                    tenant.api_key,
                    max_events=cfg.events,
                    duration=cfg.drain_ingest_seconds,
                )
            ingests.append({**result.as_dict(), "resources": res.result()})
            time.sleep(0.5)  # answers still in flight commit
            backlog = int(pg(dsn, PENDING_SQL))
            delay = cfg.slow_delay if slow else 0.0
            receiver.reset(delay=delay, secret=tenant.secret, sample=cfg.sample, detail=False)
            started = [start_worker(procs, env) for _ in range(workers)]
            with ResourceSampler([p.pid for p in started]) as res:
                try:
                    stats = receiver.wait_for(
                        backlog, timeout=cfg.timeout, what=drain_name(workers, slow)
                    )
                except BenchError as exc:
                    logs = "\n".join(tail(p, 10) for p in started)
                    raise BenchError(f"{exc}\nworker logs:\n{logs}") from exc
            for proc in started:
                procs.stop(proc)
            check_signatures(stats, drain_name(workers, slow))
            results[drain_name(workers, slow)] = {
                "rate": steady_rate(receiver.arrivals()["times"]),
                "backlog": backlog,
                "workers": workers,
                "duplicates": stats["duplicates"],
                "resources": res.result(),
            }
    # The API alone on PostgreSQL: the median of the cycles' ingest runs.
    results["distributed.ingest"] = {**medians(ingests), "cycles": ingests}
    return results
