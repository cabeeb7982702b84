"""Embedded scenarios: ``webhookd serve`` on a SQLite file in a temporary directory, the
in-process delivery engine, the bench receiver; everything through the public HTTP API."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.config import RunConfig
from bench.loadgen import ingest_run, paced
from bench.procs import BenchError, Procs, ResourceSampler
from bench.receiver import ReceiverClient, check_signatures, steady_rate
from bench.webhookd_proc import (
    PENDING_SQL,
    Tenant,
    base_env,
    create_tenant,
    declare_event_type,
    sqlite_scalar,
    start_serve,
)


class EmbeddedSite:
    """One SQLite database with a tenant whose endpoints all point at the receiver."""

    def __init__(self, procs: Procs, tmp: Path, receiver: ReceiverClient, endpoints: int) -> None:
        self.procs = procs
        self.db = tmp / f"bench-{uuid.uuid4().hex[:6]}.db"
        self.env = base_env(f"sqlite:///{self.db}")
        self.receiver = receiver
        server = start_serve(procs, self.env, workers=False)
        urls = [receiver.url(f"/hook/{n}") for n in range(endpoints)]
        self.tenant: Tenant = create_tenant(server.url, urls)
        self.server = server

    def start(self, *, workers: bool) -> None:
        self.server = start_serve(self.procs, self.env, workers=workers)

    def restart(self, *, workers: bool) -> None:
        self.procs.stop(self.server.proc)
        self.start(workers=workers)

    def pending(self) -> int:
        return sqlite_scalar(self.db, PENDING_SQL)


@contextlib.contextmanager
def delivering_site(
    cfg: RunConfig, receiver: ReceiverClient, *, detail: bool
) -> Iterator[EmbeddedSite]:
    """One endpoint, the server running with its workers, the receiver reset for it."""
    with tempfile.TemporaryDirectory() as tmp, Procs() as procs:
        site = EmbeddedSite(procs, Path(tmp), receiver, 1)
        site.restart(workers=True)
        receiver.reset(secret=site.tenant.secret, sample=cfg.sample, detail=detail)
        yield site


def ingest_and_drain(
    cfg: RunConfig, receiver: ReceiverClient, *, endpoints: int = 1, delay: float = 0.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ingest with workers off (the API alone), then restart with workers on and time the
    drain of that backlog at the receiver, from the first delivery to the last."""
    # The ingest figure runs for the whole duration: wrk reports the rate over its -d
    # duration even when a request cap stops it earlier. Only the fan-out backlog (each
    # event x endpoints deliveries) is capped; its ingest rate is not reported.
    events = 0 if endpoints == 1 else max(1, cfg.events // endpoints)
    with tempfile.TemporaryDirectory() as tmp, Procs() as procs:
        site = EmbeddedSite(procs, Path(tmp), receiver, endpoints)
        with ResourceSampler([site.server.pid]) as res:
            result = ingest_run(cfg, site.server.url, site.tenant.api_key, max_events=events)
        site.procs.stop(site.server.proc)
        backlog = site.pending()
        receiver.reset(delay=delay, secret=site.tenant.secret, sample=cfg.sample, detail=False)
        site.start(workers=True)
        with ResourceSampler([site.server.pid]) as drain_res:
            stats = receiver.wait_for(backlog, timeout=cfg.timeout, what="embedded drain")
    check_signatures(stats, "embedded drain")
    ingest_figures = {**result.as_dict(), "resources": res.result()}
    drain = {
        "rate": steady_rate(receiver.arrivals()["times"]),
        "backlog": backlog,
        "endpoints": endpoints,
        "duplicates": stats["duplicates"],
        "resources": drain_res.result(),
    }
    return ingest_figures, drain


# The schema of the load generator's payload ({"n": …, "data": "<~1 KB>"}), as a publisher
# would declare it.
BENCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["n", "data"],
    "properties": {
        "n": {"type": "integer", "minimum": 0},
        "data": {"type": "string", "maxLength": 4096},
    },
    "additionalProperties": False,
}


def ingest_with_schema(cfg: RunConfig, receiver: ReceiverClient) -> dict[str, Any]:
    """The embedded ingest run with the published type (``bench.event``) in the tenant's
    catalog under a JSON Schema: every payload is checked before it is stored."""
    with tempfile.TemporaryDirectory() as tmp, Procs() as procs:
        site = EmbeddedSite(procs, Path(tmp), receiver, 1)
        declare_event_type(site.server.url, site.tenant, "bench.event", BENCH_SCHEMA)
        with ResourceSampler([site.server.pid]) as res:
            result = ingest_run(cfg, site.server.url, site.tenant.api_key)
    return {**result.as_dict(), "resources": res.result()}


def mixed(cfg: RunConfig, receiver: ReceiverClient) -> dict[str, Any]:
    """Publishing and delivering at once: events/s in (load generator) and deliveries/s out
    (receiver arrivals inside the publishing window); then everything must arrive."""
    with delivering_site(cfg, receiver, detail=False) as site:
        with ResourceSampler([site.server.pid]) as res:
            start = time.monotonic()
            result = ingest_run(cfg, site.server.url, site.tenant.api_key)
            end = time.monotonic()
        out = sum(start <= t <= end for t in receiver.arrivals()["times"])
        time.sleep(0.5)  # let answers still in flight commit
        total = sqlite_scalar(site.db, "SELECT count(*) FROM deliveries")
        drain_start = time.monotonic()
        stats = receiver.wait_for(total, timeout=cfg.timeout, what="mixed: the rest")
        catch_up = time.monotonic() - drain_start
    check_signatures(stats, "mixed")
    return {
        "events_in": result.rate,
        "deliveries_out": out / (end - start),
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "accepted": total,
        "catch_up_seconds": round(catch_up, 2),
        "duplicates": stats["duplicates"],
        "resources": res.result(),
    }


def latency(cfg: RunConfig, receiver: ReceiverClient) -> dict[str, Any]:
    """Open-loop publishing at a steady rate; publish send time → first arrival."""
    with delivering_site(cfg, receiver, detail=True) as site:
        with ResourceSampler([site.server.pid]) as res:
            start = time.monotonic()
            sent, unanswered = paced(
                site.server.url,
                site.tenant.api_key,
                rate=cfg.latency_rate,
                duration=cfg.latency_seconds,
                prefix=f"l{uuid.uuid4().hex[:6]}",
            )
            answered = time.monotonic() - start
            stats = receiver.wait_for(len(sent), timeout=cfg.timeout, what="latency run")
    check_signatures(stats, "latency")
    arrived = receiver.arrivals()["first_arrival"]
    missing = [e for e in sent if e not in arrived]
    if missing:
        raise BenchError(f"latency: {len(missing)} accepted events never arrived: {missing[:3]}")
    lat = sorted((arrived[e] - t) * 1000 for e, (t, _) in sent.items())
    q = statistics.quantiles(lat, n=100)
    # Where the time goes: waiting for the 202 (publish), then from the 202 to the receiver.
    publish_ms = statistics.median((a - t) * 1000 for t, a in sent.values())
    after_ms = statistics.median((arrived[e] - a) * 1000 for e, (_, a) in sent.items())
    return {
        "rate": cfg.latency_rate,
        "events": len(sent),
        # Below the offered rate when the server cannot keep up: latency is then queueing.
        "accepted_rate": len(sent) / answered,
        "unanswered": unanswered,  # no answer within 2 minutes: the server was overloaded
        "p50_ms": q[49],
        "p95_ms": q[94],
        "p99_ms": q[98],
        "max_ms": lat[-1],
        "publish_p50_ms": publish_ms,
        "after_202_p50_ms": after_ms,
        "duplicates": stats["duplicates"],
        "resources": res.result(),
    }
