"""Drills 7-8: one slow endpoint, or one flooding tenant, must not hold back the others.

Both run embedded (``webhookd serve`` on SQLite, in-process engine).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import orjson
from ledger import Ledger, Receipts, alternate, combined, outcome, quantiles, wait_for
from stack import DB, Receiver, Server, sqlite_env, started
from traffic import EVENT_TYPE, PAYLOAD, Publisher, Tenant, create_tenant

from webhookd.delivery.fairness import COST_US

FAST = ["/f1", "/f2", "/f3", "/f4"]
SLOW_DELAY = 10.0  # the slow endpoint answers after this long (= webhookd's request timeout)
SETTLE = 300.0


def _server_without_engine(stop: ExitStack, logs: Path) -> Server:
    """``webhookd serve`` on SQLite with its engine off (to publish a backlog first); set
    WEBHOOKD_RUN_WORKERS to true in its env and restart it to deliver."""
    env = {**sqlite_env(logs / "webhookd.db"), "WEBHOOKD_RUN_WORKERS": "false"}
    return started(stop, Server("serve", env, logs))


def _fast(receipts: Receipts, prefix: str) -> list[dict]:
    """2xx receipts of the fast endpoints for events whose id starts with ``prefix``."""
    return [r for r in receipts.ok() if r["p"] != "/slow" and r["ev"].startswith(prefix)]


async def _fast_drain(receipts: Receipts, backlog: int, engine_on: float) -> dict[str, object]:
    """Wait (10 min at most) for the fast endpoints' share of the backlog; their rate from
    the first receipt to the last."""
    try:
        await asyncio.to_thread(
            wait_for, lambda: len(_fast(receipts, "bk_")) >= backlog, "fast backlog", 600
        )
    except TimeoutError:
        pass  # measured as it stands: the rate says how far it got
    times = sorted(r["t"] for r in _fast(receipts, "bk_"))
    elapsed = (times[-1] - times[0]) if len(times) > 1 else float("inf")
    return {
        "fast_backlog_deliveries": len(times),
        "fast_drain_per_s": round(len(times) / elapsed, 1),
        "fast_drain_seconds": round(elapsed, 1),
        "first_fast_after_start_s": round(times[0] - engine_on, 1) if times else None,
    }


async def _steady_latency(publisher: Publisher, receipts: Receipts) -> dict[str, float]:
    """20 events/s for 15 s; publish -> receipt latency at the fast endpoints."""
    await publisher.run_at((f"st_{n}" for n in range(300)), rate=20)
    expected = 300 * len(FAST)
    await asyncio.to_thread(
        wait_for, lambda: len(_fast(receipts, "st_")) >= expected, "steady phase", 300
    )
    return quantiles([r["t"] - publisher.sent_at[r["ev"]] for r in _fast(receipts, "st_")])


async def _head_of_line_run(logs: Path, events: int, slow: bool) -> dict[str, object]:
    """One variant: a backlog of ``events`` x (4 fast [+ 1 slow]) deliveries drained, then a
    steady 20 events/s for 15 s; figures for the fast endpoints only."""
    logs.mkdir()
    paths = (["/slow"] if slow else []) + FAST
    with ExitStack() as stop:
        plan = orjson.dumps({"/slow": {"delay": SLOW_DELAY}}).decode()
        receiver = started(stop, Receiver(logs, plan))
        server = _server_without_engine(stop, logs)
        tenant = create_tenant(server.url, "hol", receiver.port, paths)
        publisher = Publisher([server.url], tenant.api_key)
        await publisher.run((f"bk_{n}" for n in range(events)), concurrency=20)  # the backlog
        server.stop()
        server.env["WEBHOOKD_RUN_WORKERS"] = "true"
        receipts = Receipts(receiver.receipts)
        engine_on = time.time()
        await asyncio.to_thread(server.start)
        figures = await _fast_drain(receipts, events * len(FAST), engine_on)
        figures["steady_fast_latency"] = await _steady_latency(publisher, receipts)
        figures["slow_requests_received"] = sum(1 for r in receipts.refresh() if r["p"] == "/slow")
        receiver.set_plan({})  # the slow endpoint recovers: everything must now drain
        ledger = Ledger(receipts, server.env[DB], set(), [tenant])
        ledger.expected = {(e, p) for e in publisher.accepted for p in paths}
        settled = await asyncio.to_thread(ledger.wait_settled, SETTLE)
        name = "head-of-line" + ("" if slow else " baseline")
        return outcome(
            name,
            ledger,
            server.url,
            settled=settled,
            publisher=publisher.summary(),
            figures=figures,
        )


async def head_of_line(logs: Path, events: int = 2000, rounds: int = 3) -> dict[str, object]:
    """The fast endpoints' drain rate with one endpoint answering after 10 s, against a
    baseline without it, alternating ``rounds`` times (the machine is shared: medians);
    passes if the median slowdown is at most 20 % and no run lost anything."""

    async def run(variant: str, n: int) -> dict:
        return await _head_of_line_run(logs / f"{variant}-{n}", events, variant != "baseline")

    runs = await alternate(("baseline", "with_slow"), rounds, run)
    rates = {v: [r["figures"]["fast_drain_per_s"] for r in rs] for v, rs in runs.items()}
    base, slow = (statistics.median(rates[v]) for v in ("baseline", "with_slow"))
    slowdown = 1 - slow / base if base else 1.0
    every = runs["baseline"] + runs["with_slow"]
    failures = []
    if slowdown > 0.20:
        failures.append(
            f"fast endpoints {100 * slowdown:.0f} % slower with the slow endpoint (median "
            f"{slow:.0f}/s vs {base:.0f}/s baseline; limit 20 %)"
        )
    figures = {
        "fast_drain_per_s": rates,
        "median_fast_drain_per_s": {"baseline": base, "with_slow": slow},
        "slowdown_pct": round(100 * slowdown, 1),
        "steady_fast_latency": {
            v: [r["figures"]["steady_fast_latency"] for r in rs] for v, rs in runs.items()
        },
        "slow_requests_received": sum(r["figures"]["slow_requests_received"] for r in every),
        "duplicates_at_slow_endpoint": sum(r.get("duplicates /slow", 0) for r in every),
    }
    return combined("head-of-line", runs, failures, figures)


# -- tenant fairness -------------------------------------------------------------------------

PROBE = "a_probe"


_PROBE_DELIVERY = (
    "SELECT d.tenant_id, d.endpoint_id, d.queue_key, d.next_attempt_at, d.created_at"
    " FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.event_id = ?"
)


def _preload(db: Path, tenant: Tenant, flood: int) -> float:
    """Write tenant A's flood straight into SQLite as the publish path writes it
    (delivery/lifecycle.py new_delivery: one events row and one pending delivery per
    subscribed endpoint), as if A had published it right after the probe, in the same
    process: the probe's timestamps (so their stored format is the API's own), and the
    fair-queue keys that process would have given next (probe key + COST_US each).
    Checked against the probe's rows afterwards."""
    start = time.monotonic()
    payload = orjson.dumps({"pad": PAYLOAD}).decode()
    conn = sqlite3.connect(db, timeout=30)
    try:
        with conn:
            first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM events").fetchone()[0]
            # The row ids of A and of its endpoint, as the probe's delivery holds them.
            tenant_row, endpoint_row, key, due, now = conn.execute(
                _PROBE_DELIVERY, (PROBE,)
            ).fetchone()
            # The probe's channels as the API stored them (JSON null: no channel).
            (channels,) = conn.execute(
                "SELECT channels FROM events WHERE event_id = ?", (PROBE,)
            ).fetchone()
            conn.executemany(
                "INSERT INTO events (id, public_id, tenant_id, event_id, event_type, payload,"
                " channels, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (first + n, uuid.uuid4().hex, tenant_row, f"a_{n}", EVENT_TYPE, payload,
                     channels, now)
                    for n in range(flood)
                ),
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO deliveries (public_id, tenant_id, event_id, endpoint_id, status,"
                " attempt_count, cycle, next_attempt_at, queue_key, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'pending', 0, 1, ?, ?, ?, ?)",
                (
                    (
                        uuid.uuid4().hex,
                        tenant_row,
                        first + n,
                        endpoint_row,
                        due,
                        key + (n + 1) * COST_US,
                        now,
                        now,
                    )
                    for n in range(flood)
                ),
            )
        _check_like_api(conn)
    finally:
        conn.close()
    return time.monotonic() - start


def _shape(value: object) -> str:
    """A stored value's type and form with its digits blanked: '2026-11-29 09:00:00.1'
    and '2026-11-29T09:00:00.1' differ, two timestamps of one format do not."""
    return f"{type(value).__name__}:{re.sub(r'[0-9]', '9', str(value))}"


def _check_like_api(conn: sqlite3.Connection) -> None:
    """Every column of a preloaded row has the storage type and form of the probe's row
    (ids, public ids and the event_id itself aside)."""
    for table, rows_of in (("events", "t"), ("deliveries", "t JOIN events e ON e.id = t.event_id")):
        key = "t.event_id" if table == "events" else "e.event_id"
        columns = [
            r[1]
            for r in conn.execute(f"PRAGMA table_info({table})")
            if r[1] not in ("id", "public_id", "event_id")
        ]
        sql = (
            f"SELECT {', '.join(f't.{c}' for c in columns)} FROM {table} {rows_of} WHERE {key} = ?"
        )
        probe, preloaded = (conn.execute(sql, (e,)).fetchone() for e in (PROBE, "a_0"))
        for column, api, ours in zip(columns, probe, preloaded, strict=True):
            if _shape(api) != _shape(ours):
                raise AssertionError(f"preloaded {table}.{column} {ours!r}, the API wrote {api!r}")


async def _one_a_second(publisher: Publisher, start: float, until: Callable[[], bool]) -> None:
    """Publish b_0, b_1, ... one a second from ``start`` until ``until()`` (30 s at least,
    10 minutes at most); each publish on its own task, so a slow answer delays no other."""
    tasks: list[asyncio.Task[None]] = []
    async with publisher.session() as session:
        for n in range(600):
            if n >= 30 and until():
                break
            await asyncio.sleep(max(0.0, start + n - time.time()))
            tasks.append(asyncio.create_task(publisher.publish(session, f"b_{n}")))
        await asyncio.gather(*tasks)


async def tenant_fairness(logs: Path, flood: int = 100_000) -> dict[str, object]:
    """Tenant A's backlog of ``flood`` events (preloaded) plus A publishing more through
    the API as fast as it can, while tenant B publishes one event per second; B's
    publish -> receipt delay must stay <= 5 s."""
    with ExitStack() as stop:
        receiver = started(stop, Receiver(logs))
        server = _server_without_engine(stop, logs)
        db = logs / "webhookd.db"
        tenant_a = create_tenant(server.url, "flooder", receiver.port, ["/a"])
        tenant_b = create_tenant(server.url, "quiet", receiver.port, ["/b"])
        pub_a = Publisher([server.url], tenant_a.api_key)
        await pub_a.run([PROBE], concurrency=1)
        server.stop()
        preload_s = await asyncio.to_thread(_preload, db, tenant_a, flood)
        pub_a.accepted.update({f"a_{n}": time.time() for n in range(flood)})
        server.env["WEBHOOKD_RUN_WORKERS"] = "true"
        await asyncio.to_thread(server.start)
        engine_on = time.time()
        receipts = Receipts(receiver.receipts)
        pub_b = Publisher([server.url], tenant_b.api_key)
        a_more = asyncio.create_task(pub_a.run((f"a_api_{n}" for n in range(5000)), 10))

        def a_done() -> bool:  # A's backlog (and the probe) delivered, A's API flood sent
            backlog = sum(1 for r in receipts.ok("/a") if not r["ev"].startswith("a_api"))
            return backlog >= flood + 1 and a_more.done()

        await _one_a_second(pub_b, engine_on, until=a_done)
        await a_more
        ledger = Ledger(receipts, server.env[DB], set(), [tenant_a, tenant_b])
        await asyncio.to_thread(
            wait_for,
            lambda: {e for e, p in receipts.delivered() if p == "/b"} >= set(pub_b.accepted),
            "tenant B's events delivered",
            SETTLE,
        )
        ok_b = {r["ev"]: r["t"] for r in reversed(receipts.ok("/b"))}  # first receipt
        delays = [ok_b[e] - pub_b.sent_at[e] for e in pub_b.accepted if e in ok_b]
        a_times = sorted(r["t"] for r in receipts.ok("/a"))
        ledger.expected = {(e, "/a") for e in pub_a.accepted} | {(e, "/b") for e in pub_b.accepted}
        settled = await asyncio.to_thread(ledger.wait_settled, SETTLE)
        worst = max(delays, default=float("inf"))
        publisher = pub_a.summary()
        publisher["accepted"] = len(pub_a.accepted) + len(pub_b.accepted)
        return outcome(
            "tenant-fairness",
            ledger,
            server.url,
            settled=settled,
            publisher=publisher,
            figures={
                "flood_events": flood,
                "flood_preload": f"direct SQL, {preload_s:.1f} s",
                "a_published_via_api_during_run": len(pub_a.accepted) - flood - 1,
                "a_drain_seconds": round(a_times[-1] - engine_on, 1) if a_times else None,
                "b_events": len(delays),
                "b_delay": quantiles(delays),
            },
            condition=(worst <= 5.0, f"tenant B waited up to {worst:.1f} s (limit 5 s)"),
        )
