"""Soak (issue 18): mixed traffic on the production stack while webhookd processes die.

    .venv/bin/python -m bench.soak [--minutes 20] [--rate 300] [--kill-every 60]

One API process and two Celery workers on a fresh PostgreSQL database, RabbitMQ vhost and
Celery queue (bench/drills/stack.py), Redis for the rate limiter. 8 tenants with 25
endpoints each on the drills' receiver; 5 % of the endpoints answer 500 (retry schedule 1,
2 s: dead-lettered 3 s after their first attempt), 1 % answer 200 after 5 or 8 s. Each
event goes either to one endpoint (90 %) or to a group of five of one tenant (10 %). An
open-loop publisher sends ``--rate`` events/s for ``--minutes``; every ``--kill-every``
seconds one webhookd process, chosen at random, gets SIGKILL and is started again. Then
the backlog drains and the run is judged:

- every accepted event reached each endpoint it was routed to, or the dead-letter queue
  (the drills' ledger: bench/drills/ledger.py);
- no webhook-id arrived again after a 2xx unless a worker was killed between that 2xx and
  the repeat, within the lease (+ the poll and 3 s of slack);
- the RSS of every webhookd process (each pid is its own series) grew by at most 10 % over
  the last 10 minutes (the last half of a shorter run), its first minute left out;
- the p99 of accepted -> first 2xx arrival at the healthy endpoints, per second of
  acceptance, is under 1 s in every second outside the 5 s after a kill.

Writes bench/results/soak.json and the plot docs/soak.png (bench/soak_plot.py); prints the
report table. Exit status 1 if the soak failed. Not for CI: it takes ``--minutes`` + ~1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench" / "drills"))

from ledger import Ledger, Receipts, quantiles  # noqa: E402
from stack import DistributedServices, Proc, Receiver, Server, Worker, started  # noqa: E402
from traffic import Publisher, Tenant, add_endpoint, create_tenant  # noqa: E402

from bench import soak_plot  # noqa: E402

TENANTS, PER_TENANT, GROUP = 8, 25, 5
FAILING, SLOW_DELAYS = 10, (5.0, 8.0)  # of 200 endpoints: 5 % answer 500, 1 % are slow
FAN_OUT_SHARE = 0.10  # events of a group type (five endpoints); the rest go to one
FAILING_SCHEDULE = [1, 2]  # 3 attempts, then the dead-letter queue
# The engine renews the leases of attempts still out (every quarter lease), so the lease
# need not outlast the slow answers (8 s): a killed worker's deliveries go out again within
# the lease + a poll, inside the 5 s after the kill that the latency bound leaves out.
LEASE, POLL = 3.0, 1.0
ENV = {
    "WEBHOOKD_LEASE_SECONDS": str(LEASE),
    "WEBHOOKD_POLL_INTERVAL": str(POLL),
    "WEBHOOKD_REQUEST_TIMEOUT": "10",
    # The breaker would hold the failing endpoints' deliveries waiting (live) instead of
    # letting them reach the dead-letter queue within the run; it has drills of its own.
    "WEBHOOKD_BREAKER_THRESHOLD": "1000000",
}
KILL_WINDOW = 5.0  # seconds after a kill where the latency limit does not apply
P99_LIMIT_S = 1.0
RSS_LIMIT = 0.10
RSS_WARMUP = 60.0  # a process's first minute (pools, caches) is not growth
SAMPLE_EVERY = 2.0
# A publish without an answer is tried again after this long (the drills: 0.25 s): while the
# API restarts, every publish in flight retries, and the publisher shares the 2 cores.
RETRY_DELAY = 1.0
# Publishes waiting for an answer, at most (a publisher's connection pool). Unbounded, a
# 2-minute trial at 300 events/s on the loaded machine piled up thousands of open requests
# (API RSS 690 MB), each timed out after 15 s and sent again: 22 accepted events/s.
IN_FLIGHT = 256
SETTLE = 300.0
RESULTS = ROOT / "bench" / "results" / "soak.json"
PLOT = ROOT / "docs" / "soak.png"


@dataclass
class Topology:
    """Tenants and endpoints; which receiver path each event type of a tenant reaches."""

    tenants: list[Tenant] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    slow: dict[str, float] = field(default_factory=dict)  # path -> answer delay
    routes: dict[tuple[int, str], list[str]] = field(default_factory=dict)

    @property
    def healthy(self) -> set[str]:
        every = {p for t in self.tenants for p in t.endpoints.values()}
        return every - self.failing - set(self.slow)

    def plan(self) -> dict[str, dict[str, float]]:
        """The receiver's plan: the failing paths answer 500, the slow ones wait."""
        return {
            **{p: {"status": 500} for p in self.failing},
            **{p: {"delay": d} for p, d in self.slow.items()},
        }


def layout(seed: int) -> Topology:
    """Which endpoints fail and which are slow (a seeded draw over all of them)."""
    paths = [f"/t{t}/e{k}" for t in range(TENANTS) for k in range(PER_TENANT)]
    random.Random(seed).shuffle(paths)
    slow = dict(zip(paths[FAILING : FAILING + len(SLOW_DELAYS)], SLOW_DELAYS, strict=True))
    return Topology(failing=set(paths[:FAILING]), slow=slow)


def create_endpoints(api: str, receiver: Receiver, topo: Topology) -> None:
    """Each endpoint subscribes to its own type (``soak.e<k>``) and its group's
    (``soak.g<k // 5>``); the failing ones get a short retry schedule. One thread per
    tenant: 200 endpoints one after the other took half a minute on the loaded machine."""

    def one_tenant(t: int) -> Tenant:
        tenant = create_tenant(api, f"soak{t}", receiver.port, [])
        for k in range(PER_TENANT):
            path = f"/t{t}/e{k}"
            fields: dict[str, object] = {"event_types": [f"soak.e{k}", f"soak.g{k // GROUP}"]}
            if path in topo.failing:
                fields["retry_schedule"] = FAILING_SCHEDULE
            add_endpoint(api, tenant, receiver.url(path), path, **fields)
        return tenant

    with ThreadPoolExecutor(TENANTS) as pool:
        topo.tenants = list(pool.map(one_tenant, range(TENANTS)))
    for t in range(TENANTS):
        for k in range(PER_TENANT):
            topo.routes[(t, f"soak.e{k}")] = [f"/t{t}/e{k}"]
            topo.routes.setdefault((t, f"soak.g{k // GROUP}"), []).append(f"/t{t}/e{k}")


class RssSampler(threading.Thread):
    """Every ``SAMPLE_EVERY`` s, the RSS (MB) and CPU of each live webhookd process (and
    its children, if any): one series per pid, so a restarted process starts a new one."""

    def __init__(self, procs: list[Proc], t0: float) -> None:
        super().__init__(daemon=True)
        self.procs, self.t0 = procs, t0
        self.samples: list[tuple[float, str, float]] = []  # (s since t0, series, MB)
        self.started_at: dict[str, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_EVERY):
            for proc in self.procs:
                popen = proc.proc
                if popen is None or popen.poll() is not None:
                    continue
                try:
                    main = psutil.Process(popen.pid)
                    for p in (main, *main.children(recursive=True)):
                        series = f"{proc.name} pid {p.pid}"
                        t = time.time() - self.t0
                        self.started_at.setdefault(series, p.create_time() - self.t0)
                        self.samples.append((t, series, p.memory_info().rss / 2**20))
                except psutil.Error:
                    continue  # killed between poll() and the read


@dataclass
class Soak:
    minutes: float
    rate: float
    kill_every: float
    seed: int = 18
    rng: random.Random = field(init=False)
    kills: list[dict[str, object]] = field(default_factory=list)
    events: dict[str, list[str]] = field(default_factory=dict)  # event_id -> paths
    sent: int = 0  # events published (the schedule's first ``sent``)
    kill_error: str | None = None  # the kill loop stopped early: why

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next_event(self, n: int, topo: Topology) -> tuple[int, str, str]:
        """(tenant, event type, event id) of the n-th event, recording where it goes."""
        t = self.rng.randrange(TENANTS)
        if self.rng.random() < FAN_OUT_SHARE:
            event_type = f"soak.g{self.rng.randrange(PER_TENANT // GROUP)}"
        else:
            event_type = f"soak.e{self.rng.randrange(PER_TENANT)}"
        event_id = f"soak_{n}"
        self.events[event_id] = topo.routes[(t, event_type)]
        return t, event_type, event_id

    async def publish(self, publishers: list[Publisher], topo: Topology, seconds: float) -> None:
        """Event n is sent at start + n / rate, with at most ``IN_FLIGHT`` publishes waiting
        for an answer (each retries with its event_id until answered, traffic.py); while the
        API is down the schedule slips, and the events catch up when it is back. New events
        stop after ``seconds`` even if the schedule slipped (``self.sent`` counts them)."""
        sessions = [p.session() for p in publishers]
        slots = asyncio.Semaphore(IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()

        async def one(t: int, event_type: str, event_id: str) -> None:
            try:
                await publishers[t].publish(sessions[t], event_id, event_type)
            finally:
                slots.release()

        start, n = time.monotonic(), 0
        try:
            while n / self.rate < seconds and time.monotonic() - start < seconds:
                await asyncio.sleep(max(0.0, start + n / self.rate - time.monotonic()))
                await slots.acquire()
                task = asyncio.create_task(one(*self.next_event(n, topo)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            self.sent = n
            await asyncio.gather(*tasks)
        finally:
            for session in sessions:
                await session.close()

    async def kill_loop(self, targets: list[Proc], seconds: float, t0: float) -> None:
        """Every ``kill_every`` s one target, at random: SIGKILL, then start it again
        (on the same port; ready when it answers)."""
        start = time.monotonic()
        k = 1
        while k * self.kill_every < seconds:
            await asyncio.sleep(max(0.0, start + k * self.kill_every - time.monotonic()))
            proc = self.rng.choice(targets)
            assert proc.proc is not None
            old_pid = proc.proc.pid
            killed = time.time()
            await asyncio.to_thread(proc.kill)
            listening = asyncio.create_task(asyncio.to_thread(_listening, proc))
            failed_starts = await asyncio.to_thread(_restart, proc)
            assert proc.proc is not None
            self.kills.append(
                {
                    "t": round(killed - t0, 3),
                    "target": proc.name,
                    "pid": old_pid,
                    "new_pid": proc.proc.pid,
                    "listening_after_s": round(await listening - killed, 2),
                    "ready_after_s": round(time.time() - killed, 2),
                    "failed_starts": failed_starts,
                }
            )
            print(f"  kill {k}: {proc.name} (pid {old_pid}) at {killed - t0:.0f} s, "
                  f"ready again after {time.time() - killed:.1f} s", flush=True)  # fmt: skip
            k += 1


def _restart(proc: Proc) -> list[str]:
    """Start ``proc`` again, and again every 2 s while it exits at start (a shared service
    it checks at start-up, e.g. RabbitMQ stopped by another developer's drill); why each
    try failed."""
    failures: list[str] = []
    while True:
        try:
            proc.start()
            return failures
        except RuntimeError as exc:
            failures.append(f"{time.time():.1f}: {exc}")
            print(f"  {proc.name} did not start: {exc}; again in 2 s", flush=True)
            time.sleep(2)


def _listening(proc: Proc, timeout: float = 600) -> float:
    """When (time.time()) the restarted process first accepted a TCP connection on its
    port (an API) or its metrics port (a worker)."""
    port = int(proc.ready_url.split(":")[2].split("/")[0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return time.time()
        except OSError:
            time.sleep(0.05)
    return float("nan")


async def progress(receiver: Receiver, publishers: list[Publisher], t0: float) -> None:
    while True:
        await asyncio.sleep(30)
        try:
            received = httpx.get(receiver.url("/"), timeout=5).text
        except httpx.HTTPError:
            received = "?"
        accepted = sum(len(p.accepted) for p in publishers)
        print(f"  {time.time() - t0:5.0f} s: accepted {accepted}, receipts {received}", flush=True)


# -- judging ------------------------------------------------------------------------------------


def latency(
    rows: list[dict], accepted: dict[str, float], sent: dict[str, float], healthy: set[str]
) -> tuple[dict[tuple[str, str], float], dict[str, list[float]], dict[str, list[float]]]:
    """First 2xx arrival per (event, healthy path); its delay from the 2xx answer to the
    publish and from the first send, each grouped by the second of acceptance."""
    first: dict[tuple[str, str], float] = {}
    for r in rows:
        if 200 <= r["s"] < 300 and r["p"] in healthy and r["ev"] in accepted:
            key = (r["ev"], r["p"])
            first[key] = min(r["t"], first.get(key, r["t"]))
    by_accepted: dict[str, list[float]] = defaultdict(list)
    by_sent: dict[str, list[float]] = defaultdict(list)
    for (ev, _), t in first.items():
        second = str(int(accepted[ev]))
        by_accepted[second].append(t - accepted[ev])
        by_sent[second].append(t - sent[ev])
    return first, by_accepted, by_sent


def buckets(
    by_second: dict[str, list[float]], t0: float, kills: list[dict]
) -> list[dict[str, object]]:
    """Per second of acceptance (seconds since t0): events, p50 and p99 (ms), and whether it
    lies within ``KILL_WINDOW`` s after a kill."""
    out = []
    for second in sorted(by_second, key=int):
        delays = by_second[second]
        s = int(second) - t0
        q = quantiles(delays)
        near_kill = any(0 <= s + 1 - k["t"] and s < k["t"] + KILL_WINDOW for k in kills)
        out.append({"t": round(s), "events": len(delays), **q, "kill_window": near_kill})
    return out


def redeliveries(rows: list[dict], kills: list[dict], t0: float) -> dict[str, object]:
    """Arrivals of a webhook-id after one of its 2xx: explained when a worker was killed
    between that 2xx (-1 s) and the repeat, at most lease + poll + 3 s before the repeat."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if r["id"]:
            by_id[r["id"]].append(r)
    worker_kills = [k["t"] + t0 for k in kills if str(k["target"]).startswith("worker")]
    explained, violations = 0, []
    for webhook_id, arrivals in by_id.items():
        arrivals.sort(key=lambda r: r["t"])
        ok = next((r["t"] for r in arrivals if 200 <= r["s"] < 300), None)
        if ok is None:
            continue
        for r in arrivals:
            if r["t"] <= ok:
                continue
            if any(ok - 1 <= k <= r["t"] <= k + LEASE + POLL + 3 for k in worker_kills):
                explained += 1
            else:
                violations.append(
                    {"webhook_id": webhook_id, "event_id": r["ev"], "path": r["p"],
                     "first_2xx_t": round(ok - t0, 3), "again_t": round(r["t"] - t0, 3),
                     "status": r["s"], "attempt": r["a"]}
                )  # fmt: skip
    return {"after_2xx": explained + len(violations), "explained_by_a_kill": explained,
            "violations": violations}  # fmt: skip


def rss_growth(sampler: RssSampler, window: tuple[float, float]) -> dict[str, dict]:
    """Per series: the median of its first and last 3 samples within ``window`` (its first
    ``RSS_WARMUP`` s left out, or half the window in a short run) and the growth between
    them; ``judged`` when those samples span at least a minute (or half the window)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    since, until = window
    warmup = min(RSS_WARMUP, (until - since) / 2)
    for t, name, mb in sampler.samples:
        if since <= t <= until and t >= sampler.started_at[name] + warmup:
            series[name].append((t, mb))
    out = {}
    for name, points in sorted(series.items()):
        if len(points) < 6:
            continue
        first = statistics.median(mb for _, mb in points[:3])
        last = statistics.median(mb for _, mb in points[-3:])
        span = points[-1][0] - points[0][0]
        out[name] = {
            "from_s": round(points[0][0]),
            "to_s": round(points[-1][0]),
            "first_mb": round(first, 1),
            "last_mb": round(last, 1),
            "max_mb": round(max(mb for _, mb in points), 1),
            "growth_pct": round(100 * (last / first - 1), 1),
            "judged": span >= min(60.0, (until - since) / 2),
        }
    return out


def per_second(times: list[float], t0: float, end: float) -> list[int]:
    counts = Counter(int(t - t0) for t in times if t0 <= t < end)
    return [counts[s] for s in range(int(end - t0))]


# -- the run --------------------------------------------------------------------------------


def code_version() -> dict[str, object]:
    """The commit the run used and the files that differed from it (a shared tree)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": git("status", "--short", "--untracked-files=no").splitlines()}  # fmt: skip


def machine() -> dict[str, object]:
    return {
        "host": platform.node(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def run_soak(soak: Soak, logs: Path) -> dict[str, object]:
    seconds = soak.minutes * 60
    topo = layout(soak.seed)
    began = time.time()
    with ExitStack() as stop:
        receiver = started(stop, Receiver(logs, json.dumps(topo.plan())))
        services = stop.enter_context(DistributedServices())
        env = {**services.env, **ENV}
        api = Server("api", env, logs)
        workers = [Worker(f"worker{n}", env, logs) for n in (1, 2)]
        for proc in (api, *workers):
            stop.callback(proc.stop)
        with ThreadPoolExecutor(3) as pool:  # started together: each takes seconds here
            list(pool.map(lambda proc: proc.start(), (api, *workers)))
        create_endpoints(api.url, receiver, topo)
        publishers = [
            Publisher([api.url], t.api_key, retry_delay=RETRY_DELAY) for t in topo.tenants
        ]
        t0 = time.time()
        setup_s = t0 - began
        sampler = RssSampler([api, *workers], t0)
        sampler.start()
        cpu_before = psutil.cpu_times()
        print(f"soak: {soak.rate:g} events/s for {seconds:.0f} s, a SIGKILL every "
              f"{soak.kill_every:g} s; logs in {logs}", flush=True)  # fmt: skip
        ticker = asyncio.create_task(progress(receiver, publishers, t0))
        killing = asyncio.create_task(soak.kill_loop([api, *workers], seconds, t0))
        try:
            await soak.publish(publishers, topo, seconds)
            published = time.time()
            try:
                await killing
            except Exception as exc:  # judged below with everything else that was measured
                soak.kill_error = f"{type(exc).__name__}: {exc}"
        finally:
            ticker.cancel()
            killing.cancel()
        accepted = {e: t for p in publishers for e, t in p.accepted.items()}
        sent = {e: t for p in publishers for e, t in p.sent_at.items()}
        expected = {(e, path) for e in accepted for path in soak.events[e]}
        ledger = Ledger(Receipts(receiver.receipts), services.db_url, expected, topo.tenants)
        print("  publishing done; waiting for the backlog to drain", flush=True)
        settled = await asyncio.to_thread(ledger.wait_settled, SETTLE)
        drained = time.time()
        counts = {
            k: v for k, v in ledger.count(api.url).items() if not k.startswith("duplicates /")
        }
        sampler.halt.set()
        cpu = _cpu_share(cpu_before, psutil.cpu_times())
        rows = ledger.receipts.refresh()
    summary = {
        "code": code_version(),
        "events_offered": soak.sent,
        "events_scheduled": int(seconds * soak.rate),
        "setup_s": round(setup_s, 1),
        "publishing_s": round(published - t0, 1),
        "drained_s_after_publishing": round(drained - published, 1),
        "machine_cpu_busy_pct": cpu,
        "publisher": _publisher_summary(publishers),
    }
    return judge(soak, topo, t0, published, (rows, accepted, sent), sampler, counts, settled,
                 summary)  # fmt: skip


def _cpu_share(before: psutil._common.scputimes, after: psutil._common.scputimes) -> float:
    busy = sum(after) - sum(before) - (after.idle - before.idle)
    return round(100 * busy / max(sum(after) - sum(before), 1e-9), 1)


def _publisher_summary(publishers: list[Publisher]) -> dict[str, object]:
    summaries = [p.summary() for p in publishers]
    failures: Counter[str] = Counter()
    for s in summaries:
        failures.update(s["publish_failures"])  # type: ignore[arg-type]
    keys = ("accepted", "unknown", "unknown_already_committed", "gave_up")
    return {**{k: sum(int(s[k]) for s in summaries) for k in keys},  # type: ignore[call-overload]
            "publish_failures": dict(failures)}  # fmt: skip


def judge(
    soak: Soak,
    topo: Topology,
    t0: float,
    published: float,
    data: tuple[list[dict], dict[str, float], dict[str, float]],
    sampler: RssSampler,
    counts: dict[str, int],
    settled: bool,
    summary: dict[str, object],
) -> dict[str, object]:
    rows, accepted, sent = data
    first, by_accepted, by_sent = latency(rows, accepted, sent, topo.healthy)
    lat = buckets(by_accepted, t0, soak.kills)
    lat_sent = buckets(by_sent, t0, soak.kills)
    outside = [b for b in lat if not b["kill_window"] and b["events"] >= 2]
    over = [b for b in outside if b["p99_ms"] > 1000 * P99_LIMIT_S]
    window_s = min(600.0, (published - t0) / 2)
    rss = rss_growth(sampler, (published - t0 - window_s, published - t0))
    rss_over = {n: s for n, s in rss.items() if s["judged"] and s["growth_pct"] > 100 * RSS_LIMIT}
    again = redeliveries(rows, soak.kills, t0)
    every = [d for b in by_accepted.values() for d in b]
    failures = []
    if counts["lost"]:
        failures.append(f"{counts['lost']} accepted deliveries lost")
    if not settled or counts["live_at_end"]:
        failures.append(f"{counts['live_at_end']} deliveries still live after {SETTLE:.0f} s")
    if summary["publisher"]["gave_up"]:  # type: ignore[index]
        failures.append(f"{summary['publisher']['gave_up']} publishes never answered")  # type: ignore[index]
    if soak.kill_error:
        failures.append(f"the kills stopped early: {soak.kill_error}")
    if again["violations"]:
        failures.append(f"{len(again['violations'])} arrivals after a 2xx not explained by a kill")  # type: ignore[arg-type]
    if over:
        failures.append(f"p99 over {P99_LIMIT_S:g} s in {len(over)} of {len(outside)} seconds "
                        "outside the kill windows")  # fmt: skip
    if rss_over:
        failures.append(f"RSS grew over {100 * RSS_LIMIT:.0f} %: " + ", ".join(
            f"{n} {s['growth_pct']} %" for n, s in rss_over.items()))  # fmt: skip
    end = max(published, max(first.values(), default=published))
    ok_times = [r["t"] for r in rows if 200 <= r["s"] < 300]
    return {
        "passed": not failures,
        "failures": failures,
        "args": {"minutes": soak.minutes, "rate": soak.rate, "kill_every": soak.kill_every},
        "started_at": dt.datetime.fromtimestamp(t0, dt.UTC).isoformat(timespec="seconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": ENV,
        "topology": {
            "tenants": TENANTS,
            "endpoints": TENANTS * PER_TENANT,
            "failing": sorted(topo.failing),
            "slow": topo.slow,
            "failing_retry_schedule": FAILING_SCHEDULE,
            "fan_out_share": FAN_OUT_SHARE,
        },  # fmt: skip
        **summary,
        "counts": counts,
        "kills": soak.kills,
        "redeliveries": again,
        "latency": {
            "healthy_overall": quantiles(every),
            "seconds_judged": len(outside),
            "seconds_over_limit": over,
            "worst_p99_outside_kill_windows_ms": max((b["p99_ms"] for b in outside), default=None),
            "worst_p99_inside_kill_windows_ms": max(
                (b["p99_ms"] for b in lat if b["kill_window"] and b["events"] >= 2), default=None
            ),
        },
        "rss": {
            "window_s": [round(published - t0 - window_s), round(published - t0)],
            "series": rss,
        },  # fmt: skip
        "series": {
            "accepted_per_s": per_second(list(accepted.values()), t0, end),
            "delivered_per_s": per_second(ok_times, t0, end),
            "latency": [{k: b[k] for k in ("t", "p50_ms", "p99_ms", "events")} for b in lat],
            "latency_from_send": [{k: b[k] for k in ("t", "p50_ms", "p99_ms")} for b in lat_sent],
            "rss": [(round(t, 1), n, round(mb, 1)) for t, n, mb in sampler.samples],
        },
    }


def report(result: dict) -> str:
    """The report table (markdown)."""
    c, lat, rss = result["counts"], result["latency"], result["rss"]["series"]
    judged = {n: s for n, s in rss.items() if s["judged"]}
    worst = max(judged.items(), key=lambda i: i[1]["growth_pct"], default=None)
    again = result["redeliveries"]
    pub = result["publisher"]
    kinds = Counter(str(k["target"]) for k in result["kills"])
    targets = ", ".join(f"{n} {name}" for name, n in sorted(kinds.items()))
    inside = lat["worst_p99_inside_kill_windows_ms"]
    rows = [
        ("events accepted / sent / scheduled", "", f"{pub['accepted']:,} / "
         f"{result['events_offered']:,} / {result['events_scheduled']:,} in "
         f"{result['publishing_s']} s ({pub['gave_up']} never answered)", ""),
        ("deliveries expected / delivered / DLQ", "all delivered or DLQ",
         f"{c['accepted_deliveries']:,} / {c['delivered']:,} / {c['dlq']:,}",
         "pass" if not c["lost"] and not c["live_at_end"] else "**fail**"),
        ("lost / live at the end", "0 / 0", f"{c['lost']} / {c['live_at_end']}",
         "pass" if not c["lost"] and not c["live_at_end"] else "**fail**"),
        ("kills (SIGKILL + restart)", "", f"{len(result['kills'])}: {targets}", ""),
        ("arrivals after a 2xx: explained by a kill / not", "not: 0",
         f"{again['explained_by_a_kill']} / {len(again['violations'])}",
         "pass" if not again["violations"] else "**fail**"),
        ("healthy latency p99 per second, outside kill windows (worst)", "< 1,000 ms",
         f"{lat['worst_p99_outside_kill_windows_ms']} ms; over the limit in "
         f"{len(lat['seconds_over_limit'])} of {lat['seconds_judged']} s",
         "pass" if not lat["seconds_over_limit"] else "**fail**"),
        ("healthy latency over the whole run p50 / p99 / max", "",
         "{p50_ms} / {p99_ms} / {max_ms} ms".format(**lat["healthy_overall"]), ""),
        ("worst p99 inside the kill windows", "", f"{inside} ms", ""),
        ("RSS growth, worst process (last window)", "≤ 10 %",
         f"{worst[0]}: {worst[1]['first_mb']} → {worst[1]['last_mb']} MB "
         f"({worst[1]['growth_pct']:+} %), {len(judged)} series judged" if worst else "none judged",
         "pass" if worst and worst[1]["growth_pct"] <= 100 * RSS_LIMIT else "**fail**"),
    ]  # fmt: skip
    lines = ["| check | limit | measured | result |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {m} | {r} |" for a, b, m, r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=300.0, help="events per second")
    parser.add_argument("--kill-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    args = parser.parse_args(argv)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    logs = ROOT / "bench" / "drills" / "runs" / f"{stamp}-soak"
    logs.mkdir(parents=True)
    soak = Soak(args.minutes, args.rate, args.kill_every, seed=args.seed)
    result = asyncio.run(run_soak(soak, logs))
    result["logs"] = str(logs.relative_to(ROOT))
    result["command"] = "python -m bench.soak " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    result["report"] = report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1, default=str) + "\n")
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    soak_plot.plot(result, args.plot)
    print(result["report"], flush=True)
    print(f"{'PASS' if result['passed'] else 'FAIL'}: soak; {args.output}, {args.plot}", flush=True)
    for failure in result["failures"]:
        print(f"    failed: {failure}", flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
