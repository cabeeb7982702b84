"""Retention purge under ingest: does ``webhookd purge`` deleting ~1M old rows on PostgreSQL
slow the API's ingest down? (docs/BENCHMARKS.md, "Retention purge under ingest")

The set-up of ``make bench``'s PostgreSQL ingest (distributed.py): a fresh database, Redis,
a fresh RabbitMQ vhost, one ``webhookd serve`` with the broker configured and its workers
off, loaded by the same generator (``wrk`` with bench/ingest.lua). The tenant's history is
seeded with set-based SQL: ``--rows`` ÷ 3 events 60 days old, each with one succeeded
delivery and one attempt (rows of the shape webhookd writes, ids below every ingested row's,
as a real history has them). Each round runs, alternately:

A. ingest alone, the old rows in place, for ``--baseline-seconds``;
B. ``webhookd purge`` started as a child process, then ingest in ``--slice-seconds`` runs
   until the purge exits; B's rate is the rate of the slices that ended while it ran.

The old rows are seeded again after every B, and before every run the database is
vacuumed, analyzed and checkpointed, so no run pays for the one before. The results go to
``bench/results/purge.json``.

    .venv/bin/python -m bench.purge [--rows 1000000] [--rounds 3] [--output …]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from sqlalchemy.dialects import postgresql

from bench.config import RunConfig
from bench.loadgen import ingest_run
from bench.procs import BenchError, Procs, ResourceSampler, tail
from bench.results import ROOT, _tool_version
from bench.services import fresh_postgres, fresh_vhost, wait_for_service
from bench.webhookd_proc import REDIS_URL, base_env, create_tenant, start_serve

DEFAULT_OUTPUT = ROOT / "bench" / "results" / "purge.json"
TARGET = 0.85  # ingest during the purge ÷ ingest without it
# The endpoint the events are routed to: the workers are off, nothing is ever sent to it.
NOWHERE = "http://127.0.0.1:9/never-called"
AGE_DAYS = 60  # the seeded history's age: past the default retention (30 days)
SQL_TIMEOUT = 900  # seconds any one statement of the harness may take

# {lo} + n for n = 1 .. {count}: the old rows take the same ids in every seeding, below the
# sequences (moved past them once), like a real history older than everything ingested.
SEED = """
BEGIN;
INSERT INTO events (id, public_id, tenant_id, event_id, event_type, payload, operational,
                    created_at)
SELECT {ev} + n, gen_random_uuid(), {tenant}, 'old-' || n, 'bench.event',
       json_build_object('n', n, 'data', repeat('x', 900)), false,
       {base} + n * interval '1 millisecond'
FROM generate_series(1, {count}) AS n;
INSERT INTO deliveries (id, public_id, tenant_id, event_id, endpoint_id, status, attempt_count,
                        cycle, next_attempt_at, queue_key, last_status_code, created_at,
                        updated_at, delivered_at)
SELECT {dl} + n, gen_random_uuid(), {tenant}, {ev} + n, {endpoint}, 'succeeded', 1, 1, NULL,
       (extract(epoch FROM {base} + n * interval '1 millisecond') * 1e6)::bigint, 200,
       {base} + n * interval '1 millisecond', {base} + n * interval '1 millisecond' + '12 ms',
       {base} + n * interval '1 millisecond' + '12 ms'
FROM generate_series(1, {count}) AS n;
INSERT INTO attempts (id, delivery_id, cycle, attempt_number, started_at, duration_ms,
                      response_status, response_body, succeeded)
SELECT {at} + n, {dl} + n, 1, 1, {base} + n * interval '1 millisecond', 11.5, 200, 'ok', true
FROM generate_series(1, {count}) AS n;
COMMIT;
"""
# What a purge left of the old rows (none, unless it was stopped): gone before a new seeding.
CLEAR = """
BEGIN;
DELETE FROM attempts WHERE delivery_id > {dl} AND delivery_id <= {dl} + {count};
DELETE FROM deliveries WHERE id > {dl} AND id <= {dl} + {count};
DELETE FROM events WHERE id > {ev} AND id <= {ev} + {count};
COMMIT;
"""
OLD_EVENTS = "SELECT count(*) FROM events WHERE id > {ev} AND id <= {ev} + {count}"
NEW_EVENTS = "SELECT count(*) FROM events WHERE id > {ev} + {count}"
DELETED = re.compile(r"deleted: (?P<counts>.*)$", re.MULTILINE)
LOGGED_SECONDS = re.compile(r"retention\.purged.*?seconds=(?P<s>[0-9.]+)")


async def _sql_async(dsn: str, sql: str, fetch: bool) -> Any:
    conn = await asyncpg.connect(
        dsn, timeout=10, server_settings={"statement_timeout": f"{SQL_TIMEOUT * 1000}"}
    )
    try:
        return await (conn.fetch(sql) if fetch else conn.execute(sql))
    finally:
        await conn.close()


def sql(dsn: str, statement: str, *, fetch: bool = False) -> Any:
    """Run a statement (or a script); with ``fetch``, its rows. Bounded: SQL_TIMEOUT."""
    return asyncio.run(_sql_async(dsn, statement, fetch))


def scalar(dsn: str, statement: str) -> Any:
    return sql(dsn, statement, fetch=True)[0][0]


@dataclass
class History:
    """The seeded old rows: ``count`` events, deliveries and attempts after id offsets."""

    dsn: str
    count: int
    ids: dict[str, Any] = field(default_factory=dict)

    def locate(self) -> None:
        """The bench tenant and its endpoint; id offsets past whatever exists; then the
        sequences moved past the old rows (the ingest's ids all come after them)."""
        tenant = scalar(self.dsn, "SELECT id FROM tenants WHERE name = 'bench'")
        endpoint = scalar(
            self.dsn, f"SELECT id FROM endpoints WHERE tenant_id = {tenant} AND kind = 'webhook'"
        )
        self.ids = {"tenant": tenant, "endpoint": endpoint}
        for key, table in (("ev", "events"), ("dl", "deliveries"), ("at", "attempts")):
            last = scalar(self.dsn, f"SELECT coalesce(max(id), 0) FROM {table}")
            self.ids[key] = last
            sql(self.dsn, f"SELECT setval('{table}_id_seq', {last + self.count + 1})")

    def _format(self, template: str) -> str:
        base = f"(now() - interval '{AGE_DAYS} days')"
        return template.format(count=self.count, base=base, **self.ids)

    def seed(self) -> float:
        """Clear what is left of the old rows, seed them; seconds it took."""
        start = time.monotonic()
        sql(self.dsn, self._format(CLEAR))
        sql(self.dsn, self._format(SEED))
        if (found := self.old_events()) != self.count:
            raise BenchError(f"seeding: {found:,} old events, not {self.count:,}")
        return time.monotonic() - start

    def old_events(self) -> int:
        return int(scalar(self.dsn, self._format(OLD_EVENTS)))

    def new_events(self) -> int:
        """The events ingested (ids after the old rows'): no purge may touch them."""
        return int(scalar(self.dsn, self._format(NEW_EVENTS)))


def settle(dsn: str) -> float:
    """VACUUM ANALYZE (autovacuum may be off), CHECKPOINT, sync: each run starts from a
    clean, analyzed database with no dirty pages of the one before; seconds it took."""
    start = time.monotonic()
    sql(dsn, "VACUUM ANALYZE")
    sql(dsn, "CHECKPOINT")
    os.sync()
    return time.monotonic() - start


def slice_figures(result: Any, started: float, ended: float) -> dict[str, Any]:
    ok = result.requests - result.non2xx
    return {
        **result.as_dict(),
        "seconds": ok / result.rate if result.rate else 0.0,
        "started": round(started, 3),
        "ended": round(ended, 3),
        # The machine is shared: how busy it was (everyone's processes, ours included).
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def combined(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """Accepted events ÷ seconds over the slices; the slices' median p50, highest p99."""
    if not slices:
        return {"rate": None, "seconds": 0.0, "requests": 0}
    seconds = sum(s["seconds"] for s in slices)
    ok = sum(s["requests"] - s["non2xx"] for s in slices)
    return {
        "rate": ok / seconds,
        "seconds": round(seconds, 2),
        "requests": ok,
        "p50_ms": statistics.median(s["p50_ms"] for s in slices),
        "p99_ms": max(s["p99_ms"] for s in slices),
        "socket_errors": sum(s["socket_errors"] for s in slices),
        "wal_mb_per_s": round(sum(s["wal_mb"] for s in slices) / seconds, 1),
    }


def wal_bytes(dsn: str) -> int:
    """The server's WAL position (the whole cluster's writes, anyone's)."""
    return int(scalar(dsn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"))


def ingest_slices(
    cfg: RunConfig,
    dsn: str,
    url: str,
    api_key: str,
    seconds: float,
    until: Callable[[int], bool],
) -> list[dict[str, Any]]:
    """``make bench``'s ingest run (loadgen.ingest_run), repeated in slices of ``seconds``
    until ``until(slices so far)`` is true after one; with the WAL written meanwhile."""
    slices: list[dict[str, Any]] = []
    while True:
        wal = wal_bytes(dsn)
        started = time.monotonic()
        result = ingest_run(cfg, url, api_key, duration=seconds)
        figures = slice_figures(result, started, time.monotonic())
        figures["wal_mb"] = round((wal_bytes(dsn) - wal) / 2**20, 1)
        slices.append(figures)
        if until(len(slices)):
            return slices


class PurgeProcess:
    """``webhookd purge`` as a child process; its exit time noted by a thread."""

    def __init__(self, procs: Procs, env: dict[str, str]) -> None:
        self.procs = procs
        self.started = time.monotonic()
        self.proc = procs.python("purge", ["-m", "webhookd", "purge"], env)
        self.ended: float | None = None
        self._thread = threading.Thread(target=self._wait, daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        self.proc.wait()
        self.ended = time.monotonic()

    def done(self, timeout: float) -> bool:
        if self.ended is not None:
            return True
        if time.monotonic() - self.started > timeout:
            raise BenchError(f"webhookd purge still running after {timeout:.0f} s")
        return False

    def result(self) -> dict[str, Any]:
        self._thread.join(timeout=30)
        log = tail(self.proc, 200)
        if self.proc.returncode != 0:
            raise BenchError(f"webhookd purge exited {self.proc.returncode}:\n{log}")
        found = DELETED.search(log)
        if found is None:
            raise BenchError(f"webhookd purge printed no 'deleted:' line:\n{log}")
        deleted = {
            table: int(count)
            for count, table in (part.split() for part in found["counts"].split(", "))
        }
        logged = LOGGED_SECONDS.search(log)
        assert self.ended is not None
        return {
            "seconds": round(self.ended - self.started, 2),  # the process, start-up included
            "purge_seconds": float(logged["s"]) if logged else None,  # its own log line
            "deleted": deleted,
            "rows": sum(deleted.values()),
            "output": found.group(0),
        }


def baseline(
    cfg: RunConfig, dsn: str, server: Any, api_key: str, args: argparse.Namespace
) -> dict[str, Any]:
    """A: ingest alone, in as many slices as fit in ``--baseline-seconds``."""
    count = max(1, round(args.baseline_seconds / args.slice_seconds))
    with ResourceSampler([server.pid]) as res:
        slices = ingest_slices(
            cfg, dsn, server.url, api_key, args.slice_seconds, lambda done: done >= count
        )
    return {**combined(slices), "slices": slices, "resources": res.result()}


def under_purge(
    cfg: RunConfig,
    dsn: str,
    procs: Procs,
    server: Any,
    api_key: str,
    env: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """B: start ``webhookd purge``, ingest in slices until it exits."""
    purge = PurgeProcess(procs, env)
    with ResourceSampler([server.pid]) as res:
        slices = ingest_slices(
            cfg,
            dsn,
            server.url,
            api_key,
            args.slice_seconds,
            lambda _: purge.done(args.purge_timeout),
        )
    figures = purge.result()
    assert purge.ended is not None
    during = [s for s in slices if s["ended"] <= purge.ended]
    # A purge shorter than one slice: that slice, run partly without it (said in the results).
    measured = during or slices[:1]
    window = slices[-1]["ended"] - purge.started
    return {
        **combined(measured),
        "covered": bool(during),
        "all_slices": combined(slices),
        "slices": slices,
        "purge": {
            **figures,
            "started": round(purge.started, 3),
            "ended": round(purge.ended, 3),
            # The ingest load ran for the whole purge (it is started right after the purge).
            "within_ingest_window": purge.ended <= slices[-1]["ended"],
            "ingest_window_seconds": round(window, 2),
        },
        "resources": res.result(),
    }


def _literal(statement: Any) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _candidates(batch: int) -> Any:
    """The purge's first candidate query for the default retention, as a batch issues it
    on PostgreSQL (delivery/store/retention.py)."""
    from webhookd.delivery.store.retention import Cutoff, candidates

    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    return candidates(Cutoff(None, before), after=0, limit=batch, lock=True)


def candidates_sql(batch: int) -> str:
    return _literal(_candidates(batch))


def generic_candidates_sql(batch: int) -> tuple[str, list[Any]]:
    """The candidate query with its parameters bound as the application binds them
    (asyncpg: ``$1``, ``$2`` …), and their values."""
    from sqlalchemy.dialects.postgresql.asyncpg import dialect

    compiled = _candidates(batch).compile(
        dialect=dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"render_postcompile": True},
    )
    values = [compiled.params[name] for name in compiled.positiontup or []]
    return str(compiled), [getattr(v, "value", v) for v in values]


def batch_sql(ids: list[int]) -> list[tuple[str, str]]:
    """The rest of one batch of candidates ``ids``: the live probe, then the deletes."""
    from webhookd.delivery.store.retention import deletes, live_among

    return [("live", _literal(live_among(ids)))] + [
        (table, _literal(statement)) for table, statement in deletes(ids)
    ]


EXECUTION = re.compile(r"Execution Time: ([0-9.]+) ms")
LONG_LIST = re.compile(r"'\{[0-9,]{60,}\}'")


def _plan(rows: list[Any]) -> str:
    """A plan's lines, its long id lists abridged."""
    text = "\n".join(r[0] for r in rows)
    return LONG_LIST.sub(lambda m: f"'{{{m[0].count(',') + 1} ids}}'", text)


async def _explain(dsn: str, batch: int) -> dict[str, str]:
    conn = await asyncpg.connect(
        dsn, timeout=10, server_settings={"statement_timeout": f"{SQL_TIMEOUT * 1000}"}
    )
    plans = {}
    candidates = candidates_sql(batch)
    try:
        tr = conn.transaction()
        await tr.start()
        try:
            rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {candidates}")
            plans["candidates"] = _plan(rows)
            # The plan a prepared statement gets once PostgreSQL goes generic (after five
            # executions, if not dearer): the cutoff is then a parameter, not a constant.
            generic, values = generic_candidates_sql(batch)
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            statement = await conn.prepare(f"EXPLAIN (ANALYZE, BUFFERS) {generic}")
            rows = await statement.fetch(*values)
            plans["candidates_generic"] = _plan(rows)
            await conn.execute("SET LOCAL plan_cache_mode = auto")
            ids = [r[0] for r in await conn.fetch(candidates)]
            for name, statement in batch_sql(ids):
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {statement}")
                plans[name] = _plan(rows)
        finally:
            await tr.rollback()
    finally:
        await conn.close()
    return plans


def explain(dsn: str, batch: int) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of one batch of the purge on the seeded database: its
    candidate query, then its deletes of those candidates; rolled back."""
    return asyncio.run(_explain(dsn, batch))


def purge_alone(procs: Procs, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """The purge with no load: how long it takes on an idle API."""
    purge = PurgeProcess(procs, env)
    deadline = time.monotonic() + timeout
    while not purge.done(timeout) and time.monotonic() < deadline:
        time.sleep(0.2)
    return purge.result()


def _machine(dsn: str) -> dict[str, Any]:
    """The machine, without git (the repository may be in use)."""
    cpu = "unknown"
    info = Path("/proc/cpuinfo")
    if info.exists():
        match = re.search(r"model name\s*:\s*(.+)", info.read_text())
        cpu = match.group(1).strip() if match else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "webhookd": importlib.metadata.version("webhookd"),
        "wrk": _tool_version("wrk"),
        "postgresql": scalar(dsn, "SHOW server_version"),
        "autovacuum": scalar(dsn, "SHOW autovacuum"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = RunConfig(rounds=args.rounds, python_loadgen=args.python_loadgen)
    wait_for_service("Redis", 6379)
    rounds: list[dict[str, Any]] = []
    setup: dict[str, Any] = {}
    with fresh_postgres() as dsn, fresh_vhost() as broker, Procs() as procs:
        settings: dict[str, Any] = {
            "broker_url": broker,
            "redis_url": REDIS_URL,
            "worker_queue": f"webhookd_bench_{uuid.uuid4().hex[:8]}",
        }
        if args.batch_size:
            settings["purge_batch_size"] = args.batch_size
        if args.batch_pause is not None:
            settings["purge_batch_pause"] = args.batch_pause
        env = base_env(dsn, **settings)
        purge_env = {**env, "WEBHOOKD_LOG_LEVEL": "INFO"}  # its "retention.purged" line
        server = start_serve(procs, env, workers=False)
        tenant = create_tenant(server.url, [NOWHERE])
        history = History(dsn, args.rows // 3)
        history.locate()  # before anything is ingested: the old rows take the lowest ids
        ingest_run(cfg, server.url, tenant.api_key, duration=args.slice_seconds)  # warm-up
        machine = _machine(dsn)
        print(f"seeding {history.count:,} old events, deliveries and attempts …", flush=True)
        setup["seed_seconds"] = round(history.seed(), 1)
        setup["settle_seconds"] = round(settle(dsn), 1)
        sizes = sql(
            dsn,
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relname IN ('events', 'deliveries', 'attempts')",
            fetch=True,
        )
        setup["table_mb"] = {r[0]: round(r[1] / 2**20) for r in sizes}
        batch = args.batch_size or 1000
        if not args.no_explain:
            setup["explain"] = explain(dsn, batch)
            times = {k: EXECUTION.search(v) for k, v in setup["explain"].items()}
            print(
                "one batch, EXPLAIN ANALYZE (ms): "
                + ", ".join(f"{k} {m[1]}" for k, m in times.items() if m),
                flush=True,
            )
        if not args.no_purge_alone:
            print("the purge alone (no load) …", flush=True)
            setup["purge_alone"] = purge_alone(procs, purge_env, args.purge_timeout)
            print(f"  {setup['purge_alone']}", flush=True)
            history.seed()
            settle(dsn)
        for number in range(1, args.rounds + 1):
            if number > 1:
                history.seed()
            settle(dsn)
            old = history.old_events()
            a = baseline(cfg, dsn, server, tenant.api_key, args)
            print(f"round {number} A (ingest alone): {a['rate']:,.0f} events/s", flush=True)
            settle(dsn)
            if (found := history.old_events()) != history.count:
                raise BenchError(f"before B: {found:,} old events, not {history.count:,}")
            new_before = history.new_events()
            b = under_purge(cfg, dsn, procs, server, tenant.api_key, purge_env, args)
            time.sleep(0.5)  # answers still in flight commit
            left = history.old_events()
            # Every event accepted during B is still there: the purge took only old rows.
            b["new_events_added"] = history.new_events() - new_before
            b["accepted"] = b["all_slices"]["requests"]  # wrk's last in-flight answers: not
            b["nothing_new_deleted"] = b["new_events_added"] >= b["accepted"]  # counted, kept
            p = b["purge"]
            print(
                f"round {number} B (ingest + purge): {b['rate']:,.0f} events/s; purge "
                f"{p['seconds']:.1f} s, {p['rows']:,} rows ({p['output']}); "
                f"B/A {b['rate'] / a['rate']:.2f}",
                flush=True,
            )
            rounds.append(
                {
                    "round": number,
                    "old_events_before": old,
                    "old_events_left": left,
                    "baseline": a,
                    "under_purge": b,
                    "ratio": b["rate"] / a["rate"],
                }
            )
            # What is measured so far, saved: a run stopped later keeps its rounds.
            save(args.output, {**summary(args, machine, setup, rounds), "partial": True})
    return summary(args, machine, setup, rounds)


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def summary(
    args: argparse.Namespace,
    machine: dict[str, Any],
    setup: dict[str, Any],
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    a = statistics.median(r["baseline"]["rate"] for r in rounds)
    b = statistics.median(r["under_purge"]["rate"] for r in rounds)
    ratios = [r["ratio"] for r in rounds]
    purges = [r["under_purge"]["purge"] for r in rounds]
    return {
        "machine": machine,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "setup": setup,
        "rounds": rounds,
        "median": {
            "baseline_rate": a,
            "under_purge_rate": b,
            "ratio_of_medians": b / a,
            "median_ratio": statistics.median(ratios),
            "purge_seconds": statistics.median(p["seconds"] for p in purges),
            "purge_rows": statistics.median(p["rows"] for p in purges),
            "baseline_p99_ms": statistics.median(r["baseline"]["p99_ms"] for r in rounds),
            "under_purge_p99_ms": statistics.median(r["under_purge"]["p99_ms"] for r in rounds),
        },
        "target": {
            "what": "ingest during the purge ÷ ingest alone (median of the rounds' ratios)",
            "target": TARGET,
            "measured": statistics.median(ratios),
            "met": statistics.median(ratios) >= TARGET,
        },
    }


def render(data: dict[str, Any]) -> str:
    lines = [
        "| round | A: ingest alone (events/s) | B: ingest during the purge (events/s) | B ÷ A "
        "| purge s | rows deleted | purge within B's window | WAL MB/s A / B |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rounds"]:
        b = r["under_purge"]
        p = b["purge"]
        lines.append(
            f"| {r['round']} | {r['baseline']['rate']:,.0f} | {b['rate']:,.0f} | "
            f"{r['ratio']:.2f} | {p['seconds']:.1f} | {p['rows']:,} | "
            f"{'yes' if p['within_ingest_window'] and b['covered'] else 'NO'} | "
            f"{r['baseline'].get('wal_mb_per_s', '–')} / {b.get('wal_mb_per_s', '–')} |"
        )
    m = data["median"]
    lines.append(
        f"| **median** | **{m['baseline_rate']:,.0f}** | **{m['under_purge_rate']:,.0f}** | "
        f"**{m['median_ratio']:.2f}** | {m['purge_seconds']:.1f} | {m['purge_rows']:,.0f} | | |"
    )
    t = data["target"]
    lines.append(
        f"\n{'met' if t['met'] else 'NOT MET'}: {t['what']} = {t['measured']:.2f} "
        f"(target ≥ {t['target']}); ratio of the medians {m['ratio_of_medians']:.2f}"
    )
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="old rows (÷ 3 per table)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--slice-seconds", type=float, default=8.0, help="one ingest run (make bench: 8 s)"
    )
    parser.add_argument(
        "--baseline-seconds", type=float, default=48.0, help="A's ingest, in slices"
    )
    parser.add_argument("--purge-timeout", type=float, default=1800.0)
    parser.add_argument("--batch-size", type=int, help="WEBHOOKD_PURGE_BATCH_SIZE (default 1000)")
    parser.add_argument(
        "--batch-pause", type=float, help="WEBHOOKD_PURGE_BATCH_PAUSE (default 0.25)"
    )
    parser.add_argument("--no-explain", action="store_true", help="skip EXPLAIN ANALYZE")
    parser.add_argument("--no-purge-alone", action="store_true", help="skip the unloaded purge")
    parser.add_argument("--python-loadgen", action="store_true", help="aiohttp instead of wrk")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    return parser.parse_args(argv)


def _stop(signum: int, _: Any) -> None:
    """SIGTERM (someone stopping the run): unwind, so that the child processes are killed
    and the database and vhost dropped on the way out."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _stop)
    data = run(args)
    save(args.output, data)
    print(render(data))
    print(f"results: {args.output}")
    return 0 if data["target"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
