"""Console and portal pages with 1M stored events: does every page answer within 100 ms?
(docs/BENCHMARKS.md, "Console pages with 1M events"; run by hand, not a timed test.)

A fresh database (a SQLite file, or a scratch PostgreSQL database dropped afterwards) gets
its schema from ``webhookd serve`` (the migrations, as the app applies them), four tenants
with five endpoints each through the public API, then ``--events`` events written directly,
in bulk, from one generator: 30 days of history, a realistic mix (most deliveries succeeded
at once, 2 % dead with their attempts and dead-letter entries, some retrying and pending in
the last day, a fifth of the events fanned out to two endpoints, attempts kept for the last
three days), by bench/pages_seed.py. SQLite takes them by ``executemany`` in big
transactions, with the values the models' own column types make; PostgreSQL by ``COPY``
(asyncpg), then ``VACUUM ANALYZE``.

Then ``webhookd serve`` runs on it; the bench signs in to the console with the admin key
(the sign-in form: cookie, then the page's CSRF token) and opens a portal link, and requests
each page ``--repeat`` times after one warm-up (5 times if the warm-up took over a second),
timing each answer on the client (localhost: the server's time plus well under a
millisecond). The table gives the median and p95.

    .venv/bin/python -m bench.pages --db sqlite|postgres [--events 1000000] [--repeat 20]
        [--analyze] [--output bench/results/pages-<db>.json]

``--analyze`` runs SQLite's ANALYZE (webhookd does not): to measure what it would change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bench.pages_seed import (
    COMMON_TYPE,
    DAYS,
    ENDPOINTS,
    NOWHERE,
    RARE_TYPE,
    TENANTS,
    History,
    Layout,
    layout_of,
    scratch_database,
)
from bench.procs import BenchError, Procs
from bench.results import ROOT
from bench.webhookd_proc import ADMIN_KEY, Tenant, base_env, create_tenant, start_serve

TARGET_MS = 100.0
# -- the pages -------------------------------------------------------------------------------

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NEXT = re.compile(r'<a href="([^"]+)" rel="next">')


def sign_in(url: str) -> httpx.Client:
    """A console session as the sign-in form makes it: the cookie, then the CSRF token the
    pages carry (checked to be there)."""
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    response = client.post("/ui/login", data={"admin_key": ADMIN_KEY, "next": "/ui"})
    if response.status_code != 303:
        raise BenchError(f"console sign-in: {response.status_code} {response.text[:200]}")
    if not CSRF.search(client.get("/ui").text):
        raise BenchError("console: no CSRF token on the overview page")
    return client


def open_portal(url: str, tenant: Tenant) -> httpx.Client:
    link = httpx.post(
        f"{url}/api/v1/portal-sessions",
        headers={"X-API-Key": tenant.api_key},
        json={"ttl": 3600},
        timeout=30,
    )
    link.raise_for_status()
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    opened = client.get(link.json()["url"].removeprefix(url))
    if opened.status_code != 303:
        raise BenchError(f"portal link: {opened.status_code} {opened.text[:200]}")
    return client


def _local(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def follow_next(client: httpx.Client, path: str, pages: int) -> str:
    """The page reached by following the ``Older`` link ``pages`` times from ``path``."""
    for _ in range(pages):
        found = NEXT.search(client.get(path).text)
        if found is None:
            break
        path = unescape(found.group(1))
    return path


def page_list(
    console: httpx.Client, portal: httpx.Client, tenant: Tenant, layout: Layout, end: dt.datetime
) -> list[tuple[str, httpx.Client, str]]:
    """(name, client, path) of every page measured, for the biggest tenant."""
    t = f"/ui/tenants/{tenant.id}"
    sample = layout.sample
    if "event_id" not in sample:
        raise BenchError("the seed has no dead delivery of the first tenant to show")
    # The endpoint of the sample's dead delivery: a page with failures in its health.
    endpoint = layout.endpoint_refs[sample["endpoint"]]
    if endpoint not in console.get(f"{t}/endpoints").text:
        raise BenchError(f"{endpoint} is not on the console's endpoints page")
    event_page = f"{t}/events/{quote(sample['event_id'], safe='')}"
    since = end - dt.timedelta(days=DAYS / 2)
    events = f"{t}/events"
    return [
        ("overview", console, "/ui"),
        ("tenants", console, "/ui/tenants"),
        ("tenant endpoints", console, f"{t}/endpoints"),
        ("endpoint detail", console, f"{t}/endpoints/{endpoint}"),
        ("event log, first page", console, events),
        ("event log, by event id", console, f"{events}?event_id={sample['event_id']}"),
        ("event log, by type (common)", console, f"{events}?event_type={COMMON_TYPE}"),
        ("event log, by type (rare)", console, f"{events}?event_type={RARE_TYPE}"),
        ("event log, by status (dead)", console, f"{events}?status=dead"),
        ("event log, by status (retrying)", console, f"{events}?status=retrying"),
        (
            "event log, by time range (1 h, 15 days ago)",
            console,
            f"{events}?since={_local(since)}&until={_local(since + dt.timedelta(hours=1))}",
        ),
        ("event log, until 15 days ago (no since)", console, f"{events}?until={_local(since)}"),
        ("event log, 10 next links deep", console, follow_next(console, events, 10)),
        (
            "event log, by status (dead), 3 next links deep",
            console,
            follow_next(console, f"{events}?status=dead", 3),
        ),
        ("event detail", console, event_page),
        ("DLQ", console, f"{t}/dlq"),
        (
            "DLQ, by endpoint and type",
            console,
            f"{t}/dlq?endpoint_id={endpoint}&event_type={COMMON_TYPE}",
        ),
        ("live view rows", console, "/ui/live/rows"),
        ("portal endpoints", portal, "/portal"),
        ("portal deliveries", portal, f"/portal/endpoints/{endpoint}"),
        ("portal deliveries, dead", portal, f"/portal/endpoints/{endpoint}?status=dead"),
        ("portal delivery detail", portal, f"/portal/deliveries/{sample['delivery_id']}"),
    ]


SLOW_MS = 1000.0  # a page whose warm-up took longer is requested only SLOW_REPEAT times
SLOW_REPEAT = 5


def _get(client: httpx.Client, name: str, path: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise BenchError(f"{name}: {path} answered {response.status_code}")
    return elapsed, response


def measure(
    pages: list[tuple[str, httpx.Client, str]], repeat: int, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Each page once to warm up, then ``repeat`` times (SLOW_REPEAT times if far too slow:
    its figures are clear by then, and the run stays within minutes)."""
    results = []
    for name, client, path in pages:
        warm_up, response = _get(client, name, path)
        count = repeat if warm_up < SLOW_MS else min(repeat, SLOW_REPEAT)
        times = sorted(_get(client, name, path)[0] for _ in range(count))
        row = {
            "page": name,
            "path": path,
            "requests": count,
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
            "bytes": len(response.content),
        }
        row["met"] = row["p95_ms"] < TARGET_MS
        log(f"  {name}: median {row['median_ms']} ms, p95 {row['p95_ms']} ms")
        results.append(row)
    return results


# -- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    def log(line: str) -> None:
        print(line, flush=True)

    with scratch_database(args.db) as db, Procs() as procs:
        env = base_env(db.url, retention_days=0)  # keep everything: no purge meanwhile
        server = start_serve(procs, env, workers=False)  # applies the migrations
        tenants = [
            create_tenant(server.url, [f"{NOWHERE}/{t}/{k}" for k in range(ENDPOINTS)])
            for t in range(TENANTS)
        ]
        procs.stop(server.proc)
        layout = layout_of(db)
        end = dt.datetime.now(dt.UTC).replace(microsecond=0)
        history = History(layout, args.events, end)
        log(f"seeding {args.events:,} events into {args.db} …")
        started = time.monotonic()
        db.seed(history)
        seed_seconds = time.monotonic() - started
        counts = {k: v for k, v in history.ids.items()} | {"event": args.events}
        log(f"  {seed_seconds:.1f} s: {counts}")
        extra = []
        if args.analyze and args.db == "sqlite":  # PostgreSQL: VACUUM ANALYZE ran already
            extra.append("ANALYZE")
        for statement in extra:
            log(f"  {statement}")
            db.execute(statement)
        server = start_serve(procs, env, workers=False)
        console = sign_in(server.url)
        portal = open_portal(server.url, tenants[0])
        started = time.monotonic()
        try:
            pages = page_list(console, portal, tenants[0], layout, end)
            log(f"pages, {args.repeat} requests each after a warm-up:")
            results = measure(pages, args.repeat, log)
        finally:
            console.close()
            portal.close()
        run_seconds = time.monotonic() - started
    return {
        "db": args.db,
        "events": args.events,
        "rows": counts,
        "repeat": args.repeat,
        "analyze": args.analyze or args.db == "postgres",
        "seed_seconds": round(seed_seconds, 1),
        "run_seconds": round(run_seconds, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "target_ms": TARGET_MS,
        "pages": results,
    }


def render(data: dict[str, Any]) -> str:
    lines = [
        f"{data['db']}, {data['events']:,} events (seeded in {data['seed_seconds']} s), "
        f"{data['repeat']} requests a page; statistics: "
        f"{'yes' if data['analyze'] else 'no'}; load average {data['load_average']}",
        "",
        "| page | median ms | p95 ms | requests | < 100 ms |",
        "|---|---|---|---|---|",
    ]
    for row in data["pages"]:
        met = "yes" if row["met"] else "**no**"
        lines.append(
            f"| {row['page']} | {row['median_ms']} | {row['p95_ms']} | {row['requests']} | {met} |"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="requests a page (+1 warm-up)")
    parser.add_argument(
        "--analyze", action="store_true", help="SQLite: ANALYZE after seeding (the app does not)"
    )
    parser.add_argument("--output", type=Path, help="default: bench/results/pages-<db>.json")
    return parser.parse_args(argv)


def _stop(signum: int, _: Any) -> None:
    """SIGTERM: unwind, so that the server is stopped and the scratch database dropped."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _stop)
    data = run(args)
    output = args.output or ROOT / "bench" / "results" / f"pages-{args.db}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(data, indent=1) + "\n")
    print(render(data))
    print(f"results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
