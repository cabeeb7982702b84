"""``make bench-scale``: does the cost per delivery grow with the backlog? (issue 5)

For each size N: publish one reference event through the API (workers off), then copy it
N - 1 times with one SQL statement per table, writing exactly the columns and values the API
wrote for the reference (publishing 1M events through the API would take hours here), start
``webhookd serve`` with its workers and time the whole drain at the receiver: µs per
delivery overall, over the first 10 % and the last 10 % of arrivals, and the server's peak
RSS.

    .venv/bin/python -m bench.scale [--sizes 10000 100000] [--backend sqlite|postgresql]
    .venv/bin/python -m bench.scale --sizes 1000000          # the long run (~15-20 min)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.loadgen import publish
from bench.procs import BenchError, Procs, ResourceSampler
from bench.receiver import ReceiverClient, check_signatures
from bench.report import DEFAULT_DOC, update_doc
from bench.results import DEFAULT_OUTPUT, RSS_LIMIT_MB, machine, medians, save_section
from bench.services import fresh_postgres
from bench.webhookd_proc import PENDING_SQL, base_env, create_tenant, pg, start_serve

REFERENCE = "scale-ref"
PENDING_RSS_SIZE, PENDING_RSS_LIMIT_MB = 1_000_000, 150.0  # issue 18: RSS with 1M pending
# Copies of the reference event and of its delivery row: every column the API's publish
# writes (webhookd/event/service.py), with the reference's own values; only the event_id
# differs. {series} yields n = 1 .. :count.
COPY_EVENTS = """
INSERT INTO events (public_id, tenant_id, event_id, event_type, payload, created_at)
SELECT {new_id}, e.tenant_id, 'scale-' || n, e.event_type, e.payload, e.created_at
FROM {series}, events e WHERE e.event_id = 'scale-ref'
"""
COPY_DELIVERIES = """
INSERT INTO deliveries (public_id, tenant_id, event_id, endpoint_id, status, attempt_count,
                        cycle, next_attempt_at, created_at, updated_at)
SELECT {new_id}, e.tenant_id, e.id, d.endpoint_id, d.status, d.attempt_count, d.cycle,
       d.next_attempt_at, d.created_at, d.updated_at
FROM events e, deliveries d
WHERE e.event_id LIKE 'scale-%' AND e.event_id != 'scale-ref' AND d.id = (
    SELECT d2.id FROM deliveries d2 JOIN events r ON r.id = d2.event_id
    WHERE r.event_id = 'scale-ref')
ORDER BY e.id
"""
SQLITE_SERIES = (
    "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) "
    "SELECT n FROM s) AS seq"
)
PG_SERIES = "generate_series(1, {count}) AS n"
# A new public id per copied row (each database's own spelling of a random UUID).
SQLITE_NEW_ID = "lower(hex(randomblob(16)))"
PG_NEW_ID = "gen_random_uuid()"
# The reference row, then every delivery, then its event by id: CROSS JOIN keeps SQLite to
# that order (left to right). Left to its planner since the events' indexes of issue 17, it
# looped over events and scanned deliveries for each: minutes for 10,000 rows.
SAME_AS_REFERENCE = """
SELECT count(*) FROM
  (SELECT d.endpoint_id, d.status, d.attempt_count, d.cycle, d.next_attempt_at,
          d.created_at AS dc, e.payload, e.event_type
   FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.event_id = 'scale-ref') r
  CROSS JOIN deliveries d CROSS JOIN events e
WHERE e.id = d.event_id AND d.endpoint_id = r.endpoint_id AND d.status = r.status
  AND d.attempt_count = r.attempt_count AND d.cycle = r.cycle
  AND d.next_attempt_at = r.next_attempt_at AND d.created_at = r.dc
  AND e.event_type = r.event_type AND CAST(e.payload AS TEXT) = CAST(r.payload AS TEXT)
  AND d.lease_owner IS NULL AND d.delivered_at IS NULL
"""


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "postgresql":
        with fresh_postgres() as url:
            yield url
    else:
        yield f"sqlite:///{tmp / 'scale.db'}"


def execute(url: str, statements: list[str]) -> int:
    """Run the statements in one transaction; the count of SAME_AS_REFERENCE after them."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60)
        try:
            with conn:
                for sql in statements:
                    conn.execute(sql)
            return int(conn.execute(SAME_AS_REFERENCE).fetchone()[0])
        finally:
            conn.close()
    script = "BEGIN; " + "; ".join(statements) + "; COMMIT; ANALYZE"
    pg(url, script, script=True)
    return int(pg(url, SAME_AS_REFERENCE))


def backlog(url: str, backend: str, size: int) -> float:
    """Copy the reference into ``size`` pending deliveries in all; seconds it took."""
    postgres = backend == "postgresql"
    series = (PG_SERIES if postgres else SQLITE_SERIES).format(count=size - 1)
    new_id = PG_NEW_ID if postgres else SQLITE_NEW_ID
    start = time.monotonic()
    copies = [
        COPY_EVENTS.format(series=series, new_id=new_id),
        COPY_DELIVERIES.format(new_id=new_id),
    ]
    same = execute(url, copies)
    if same != size:
        raise BenchError(f"bulk insert: {same:,} rows match the API's reference, not {size:,}")
    return time.monotonic() - start


def pending(url: str) -> int:
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return int(conn.execute(PENDING_SQL).fetchone()[0])
        finally:
            conn.close()
    return int(pg(url, PENDING_SQL))


def per_delivery(times: list[float]) -> dict[str, float]:
    n = len(times)
    tenth = max(1, n // 10)
    overall = (times[-1] - times[0]) / (n - 1) * 1e6
    first = (times[tenth] - times[0]) / tenth * 1e6
    last = (times[-1] - times[-1 - tenth]) / tenth * 1e6
    return {
        "us_per_delivery": overall,
        "first_10_us": first,
        "last_10_us": last,
        "last_vs_first": last / first,
        "deliveries_per_s": 1e6 / overall,
    }


def scale_once(backend: str, size: int, receiver: ReceiverClient) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(backend, Path(tmp)) as url,
        Procs() as procs,
    ):
        env = base_env(url)
        server = start_serve(procs, env, workers=False)
        tenant = create_tenant(server.url, [receiver.url("/scale")])
        publish(server.url, tenant.api_key, [REFERENCE], concurrency=1)
        procs.stop(server.proc)
        insert_seconds = backlog(url, backend, size)
        os.sync()  # the bulk insert's dirty pages: written back now, not during the drain
        if (count := pending(url)) != size:
            raise BenchError(f"backlog holds {count:,} pending deliveries, not {size:,}")
        receiver.reset(secret=tenant.secret, sample=1000, detail=False)
        server = start_serve(procs, env, workers=True)
        with ResourceSampler([server.pid], interval=0.5) as res:
            timeout = max(600.0, size / 100)
            stats = receiver.wait_for(size, timeout=timeout, what=f"drain of {size:,}")
        check_signatures(stats, "scale")
    times = receiver.arrivals()["times"]
    return {
        **per_delivery(times),
        "peak_rss_mb": res.result()["peak_rss_mb"],
        "cpu_seconds": res.result()["cpu_seconds"],
        "insert_seconds": insert_seconds,
        "duplicates": stats["duplicates"],
    }


def evaluate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    targets = []
    for backend in sorted({r["backend"] for r in runs}):
        mine = sorted((r for r in runs if r["backend"] == backend), key=lambda r: r["size"])
        small, big = mine[0], mine[-1]
        if big is not small:
            ratio = big["median"]["us_per_delivery"] / small["median"]["us_per_delivery"]
            targets.append(
                {
                    "what": f"{backend}: µs per delivery, {big['size']:,} ÷ {small['size']:,} "
                    "(within ±20 %)",
                    "measured": f"{ratio:.2f}",
                    "met": 0.8 <= ratio <= 1.2,
                }
            )
        for r in mine:
            lvf = r["median"]["last_vs_first"]
            targets.append(
                {
                    "what": f"{backend} {r['size']:,}: last 10 % ÷ first 10 % (within ±20 %)",
                    "measured": f"{lvf:.2f}",
                    "met": 0.8 <= lvf <= 1.2,
                }
            )
        peak = max(r["median"]["peak_rss_mb"] for r in mine)
        targets.append(
            {
                "what": f"{backend}: peak RSS of webhookd serve (≤ {RSS_LIMIT_MB:.0f} MB)",
                "measured": f"{peak:.0f} MB",
                "met": peak <= RSS_LIMIT_MB,
            }
        )
        if big["size"] >= PENDING_RSS_SIZE:
            peak = big["median"]["peak_rss_mb"]
            targets.append(
                {
                    "what": f"{backend}: peak RSS with {big['size']:,} pending (issue 18: "
                    f"≤ {PENDING_RSS_LIMIT_MB:.0f} MB)",
                    "measured": f"{peak:.0f} MB",
                    "met": peak <= PENDING_RSS_LIMIT_MB,
                }
            )
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    runs = []
    plan = [(size, r) for size in args.sizes for r in range(args.rounds)]
    raw: dict[int, list[dict[str, Any]]] = {}
    with Procs() as procs, tqdm(plan, unit="run", dynamic_ncols=True) as bar:
        receiver = ReceiverClient(procs)
        for size, r in bar:
            bar.set_description(f"{args.backend} backlog {size:,} round {r + 1}")
            raw.setdefault(size, []).append(scale_once(args.backend, size, receiver))
    for size, rounds in raw.items():
        runs.append(
            {"backend": args.backend, "size": size, "rounds": rounds, "median": medians(rounds)}
        )
    data = {"machine": machine(), "rounds": args.rounds, "runs": runs, "targets": evaluate(runs)}
    save_section(args.output, "scale", data)
    if not args.no_doc:
        update_doc(args.doc, args.output)
    for run in runs:
        m = run["median"]
        print(
            f"{run['backend']} {run['size']:>9,}: {m['us_per_delivery']:.0f} µs/delivery "
            f"(first 10 % {m['first_10_us']:.0f}, last 10 % {m['last_10_us']:.0f}), "
            f"peak RSS {m['peak_rss_mb']:.0f} MB"
        )
    for t in data["targets"]:
        print(f"{'met    ' if t['met'] else 'NOT MET'} {t['what']}: {t['measured']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
