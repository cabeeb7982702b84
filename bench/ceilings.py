"""The ceilings measured in the same run as webhookd: (a) bare aiohttp delivery client,
(b) no-database FastAPI ingest, (c) the naive Celery peer."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from bench.config import RunConfig
from bench.loadgen import ingest_run
from bench.procs import LOCALHOST, BenchError, Procs, ResourceSampler, free_port, tail
from bench.receiver import ReceiverClient, check_signatures, steady_rate
from bench.services import fresh_vhost
from webhookd.config import Settings

# A fixed test secret for the ceilings' signatures (the receiver verifies a sample of them).
CEILING_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105


def delivery_ceiling(cfg: RunConfig, receiver: ReceiverClient, *, delay: float) -> dict[str, Any]:
    """(a) at webhookd's delivery concurrency; the rate is read at the receiver."""
    concurrency = Settings().delivery_concurrency
    total = cfg.ceiling_requests if not delay else min(cfg.ceiling_requests, 8_000)
    receiver.reset(delay=delay, secret=CEILING_SECRET, sample=cfg.sample, detail=False)
    with Procs() as procs:
        proc = procs.python(
            "ceiling-client",
            [
                "-m",
                "bench.ceiling_client",
                receiver.url("/ceiling"),
                f"--requests={total}",
                f"--concurrency={concurrency}",
                f"--secret={CEILING_SECRET}",
            ],
        )
        with ResourceSampler([proc.pid]) as res:
            proc.wait(timeout=300)
        if proc.returncode != 0:
            raise BenchError(f"delivery ceiling client failed ({proc.returncode}):\n{tail(proc)}")
        client = json.loads(tail(proc, 1))
    stats = receiver.wait_for(total, timeout=30, what="delivery ceiling")
    check_signatures(stats, "delivery ceiling")
    return {
        "rate": steady_rate(receiver.arrivals()["times"]),
        "client_rate": client["rate"],
        "requests": total,
        "concurrency": concurrency,
        "resources": res.result(),
    }


def ingest_ceiling(cfg: RunConfig) -> dict[str, Any]:
    """(b) the no-database FastAPI app under the same load generator as webhookd."""
    with Procs() as procs:
        port = free_port()
        proc = procs.python("ceiling-app", ["-m", "bench.ceiling_app", str(port)])
        url = f"http://{LOCALHOST}:{port}"
        procs.wait_http(proc, f"{url}/ready")
        with ResourceSampler([proc.pid]) as res:
            result = ingest_run(cfg, url, "whk_ceiling")
    return {**result.as_dict(), "resources": res.result()}


def naive_peer(cfg: RunConfig, receiver: ReceiverClient, *, delay: float) -> dict[str, Any]:
    """(c) enqueue the backlog, then start the prefork worker (concurrency = 2 cores) and
    time the drain at the receiver from the first delivery to the last."""
    count = cfg.naive_tasks if not delay else cfg.naive_tasks_slow
    queue = f"webhookd_bench_naive_{uuid.uuid4().hex[:8]}"
    receiver.reset(delay=delay, secret=CEILING_SECRET, sample=cfg.sample, detail=False)
    with fresh_vhost() as broker, Procs() as procs:
        env = {"BENCH_NAIVE_BROKER": broker, "BENCH_NAIVE_QUEUE": queue}
        _in_naive_env(env, "enqueue", count, receiver.url("/naive"), CEILING_SECRET, queue)
        worker = procs.start(
            "naive-worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.naive_celery",
                "worker",
                "-Q",
                queue,
                "--concurrency=2",
                "--loglevel=WARNING",
                f"--hostname=naive-{queue}@%h",
            ],
            env,
        )
        with ResourceSampler([worker.pid]) as res:
            stats = receiver.wait_for(count, timeout=cfg.timeout, what="naive Celery peer")
        procs.stop(worker)
        _in_naive_env(env, "purge")
    check_signatures(stats, "naive Celery peer")
    return {
        "rate": steady_rate(receiver.arrivals()["times"]),
        "tasks": count,
        "duplicates": stats["duplicates"],
        "resources": res.result(),
    }


def _in_naive_env(env: dict[str, str], action: str, *args: object) -> None:
    """Run enqueue/purge in a child with the peer's broker settings (its module reads them
    at import, as a Celery app does)."""
    code = f"from bench import naive_celery as n; n.{action}(*{args!r})"
    with Procs() as procs:
        proc = procs.python(f"naive-{action}", ["-c", code], env)
        proc.wait(timeout=300)
        if proc.returncode != 0:
            raise BenchError(f"naive peer {action} failed:\n{tail(proc)}")
