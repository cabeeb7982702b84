"""What happened to every accepted event: delivered, dead-lettered, still live, or lost.

- delivered: distinct (event_id, receiver path) received with a 2xx answer;
- duplicates: 2xx receipts beyond the first of the same webhook-id (at-least-once);
- dlq: (event_id, path) in the tenant's dead-letter queue, read through the DLQ API;
- live: deliveries still pending/failed/delivering in the database (not finished yet);
- lost: accepted, not delivered, not in the DLQ.
"""

from __future__ import annotations

import sqlite3
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from traffic import Tenant


class Receipts:
    """Reads the receiver's JSON lines incrementally (only complete lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict] = []
        self._offset = 0

    def refresh(self) -> list[dict]:
        if not self.path.exists():
            return self.rows
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        self.rows.extend(orjson.loads(line) for line in data[:end].splitlines() if line)
        return self.rows

    def ok(self, path: str | None = None) -> list[dict]:
        return [r for r in self.refresh() if 200 <= r["s"] < 300 and path in (None, r["p"])]

    def delivered(self) -> set[tuple[str, str]]:
        return {(r["ev"], r["p"]) for r in self.ok()}

    def duplicates(self, path: str | None = None) -> int:
        return sum(n - 1 for n in Counter(r["id"] for r in self.ok(path)).values())


def dead_letters(api: str, tenant: Tenant) -> set[tuple[str, str]]:
    """(event_id, path) of every unresolved dead letter of the tenant, via the DLQ API."""
    found: set[tuple[str, str]] = set()
    cursor = None
    with httpx.Client(headers={"X-API-Key": tenant.api_key}, timeout=30) as client:
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = client.get(f"{api}/api/v1/dlq", params=params)
            page.raise_for_status()
            body = page.json()
            found |= {(i["event_id"], tenant.endpoints[i["endpoint_id"]]) for i in body["items"]}
            cursor = body["next_cursor"]
            if cursor is None:
                return found


# Not finished: due, scheduled, leased, or waiting without a next attempt (an open circuit,
# a disabled endpoint, a FIFO turn: docs/DELIVERY.md); the engine's models.OPEN.
LIVE = "status IN ('pending', 'delivering', 'retrying')"
LIVE_SQL = (
    "SELECT e.event_id, d.endpoint_id FROM deliveries d JOIN events e ON e.id = d.event_id"
    f" WHERE d.{LIVE}"
)


def query(db_url: str, sql: str) -> list[tuple[str, ...]]:
    """Rows of a read-only query, straight from the database (SQLite file or psql)."""
    if db_url.startswith("sqlite"):
        path = db_url.split(":///", 1)[1]
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return [tuple(str(v) for v in row) for row in conn.execute(sql)]
        finally:
            conn.close()
    out = subprocess.run(
        ["psql", db_url.replace("+asyncpg", ""), "-tA", "-F", " ", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [tuple(line.split(" ")) for line in out.stdout.splitlines() if line]


def live_deliveries(db_url: str) -> list[tuple[str, int]]:
    """(event_id, endpoint id) of deliveries not finished yet: pending, awaiting a retry,
    leased, or waiting. There is no API for it: read from the database."""
    return [(e, int(i)) for e, i in query(db_url, LIVE_SQL)]


def live_count(db_url: str) -> int:
    return int(query(db_url, f"SELECT count(*) FROM deliveries WHERE {LIVE}")[0][0])


@dataclass
class Ledger:
    receipts: Receipts
    db_url: str
    expected: set[tuple[str, str]]  # accepted event_id x subscribed paths
    tenants: list[Tenant]

    def wait_settled(self, timeout: float) -> bool:
        """Wait until no delivery is live in the database: each one succeeded or is dead
        (so late redeliveries have happened and are counted). False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if live_count(self.db_url) == 0:
                    time.sleep(1)  # the receiver writes its line just after answering
                    return True
            except (sqlite3.Error, subprocess.SubprocessError):
                pass  # database restarting or busy: ask again
            time.sleep(0.5)
        return False

    def count(self, api: str) -> dict[str, int]:
        """The figures every drill reports; ``lost`` excludes what is still live."""
        dlq = set().union(*(dead_letters(api, t) for t in self.tenants))
        paths = {i: p for t in self.tenants for i, p in t.endpoints.items()}
        live = {(e, paths[i]) for e, i in live_deliveries(self.db_url)}
        delivered = self.receipts.delivered()
        missing = self.expected - delivered
        names = sorted(set(paths.values()))
        by_path = {f"duplicates {p}": self.receipts.duplicates(p) for p in names}
        by_path = by_path if len(names) > 1 else {}
        return {
            "accepted_deliveries": len(self.expected),
            "delivered": len(delivered & self.expected),
            "duplicates": self.receipts.duplicates(),
            **by_path,
            "dlq": len(dlq),
            "live_at_end": len(live),
            "lost": len(missing - dlq - live),
        }


def latency_ms(
    receipts: Receipts,
    sent_at: dict[str, float],
    accepted: dict[str, float],
    window: tuple[float, float],
) -> dict[str, float | int]:
    """For the events first sent within ``window`` (since, until): the delay to their first
    2xx receipt from the publish (``sent``: includes the publish itself) and from its 2xx
    answer (``accepted``: the delivery path alone); p50 and max, in ms."""
    first: dict[str, float] = {}
    for r in receipts.ok():
        first.setdefault(r["ev"], r["t"])
    since, until = window
    events = [e for e, t in sent_at.items() if since <= t < until and e in first and e in accepted]
    if not events:
        return {"events": 0}
    figures: dict[str, float | int] = {"events": len(events)}
    for name, start in (("sent", sent_at), ("accepted", accepted)):
        delays = sorted(first[e] - start[e] for e in events)
        figures[f"{name}_p50_ms"] = round(delays[len(delays) // 2] * 1000, 1)
        figures[f"{name}_max_ms"] = round(delays[-1] * 1000, 1)
    return figures


def quantiles(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of durations in seconds, in ms."""
    if len(values) < 2:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    """Poll ``check()`` (bounded) until true; fail the drill naming ``what``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout:.0f} s")
        time.sleep(0.1)


def outcome(
    name: str,
    ledger: Ledger,
    api: str,
    *,
    settled: bool,
    publisher: dict[str, object],
    figures: dict[str, object],
    condition: tuple[bool, str] = (True, ""),
) -> dict[str, object]:
    """The drill's result: passes with 0 lost, everything settled, and its own condition."""
    counts = ledger.count(api)
    failures = []
    if counts["lost"]:
        failures.append(f"{counts['lost']} accepted deliveries lost")
    if not settled or counts["live_at_end"]:
        failures.append(f"{counts['live_at_end']} deliveries still live at the deadline")
    if publisher.get("gave_up"):
        failures.append(f"{publisher['gave_up']} publishes never answered")
    ok, why = condition
    if not ok:
        failures.append(why)
    return {
        "drill": name,
        "passed": not failures,
        "failures": failures,
        "accepted": publisher["accepted"],
        **counts,
        "publisher": publisher,
        "figures": figures,
    }


# -- drills that compare variants over alternating rounds -------------------------------------

COUNTS = (
    "accepted",
    "accepted_deliveries",
    "delivered",
    "duplicates",
    "dlq",
    "live_at_end",
    "lost",
)


async def alternate(
    variants: Iterable[str], rounds: int, run: Callable[[str, int], Awaitable[dict]]
) -> dict[str, list[dict]]:
    """``run(variant, round)`` for every variant, round after round (the machine is shared:
    alternating spreads its noise over the variants); the results by variant."""
    names = list(variants)
    runs: dict[str, list[dict]] = {v: [] for v in names}
    for n in range(1, rounds + 1):
        for variant in names:
            runs[variant].append(await run(variant, n))
    return runs


def combined(
    name: str, runs: dict[str, list[dict]], failures: list[str], figures: dict[str, object]
) -> dict[str, object]:
    """One result for the runs of an ``alternate``: their counts summed, their failures and
    ``failures`` (the comparison's), the drill's ``figures``."""
    every = [r for rs in runs.values() for r in rs]
    failures = [f"{r['drill']}: {f}" for r in every for f in r["failures"]] + failures
    return {
        "drill": name,
        "passed": not failures,
        "failures": failures,
        **{key: sum(r[key] for r in every) for key in COUNTS},
        "publisher": {"runs": len(every), "gave_up": sum(r["publisher"]["gave_up"] for r in every)},
        "figures": figures,
    }
