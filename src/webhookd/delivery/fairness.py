"""Fair claim order across tenants: start-time fair queueing on ``deliveries.queue_key``.

Workers claim due deliveries in ``queue_key`` order. A new delivery's key is

    start = max(V, the tenant's last finish),  finish = start + COST_US

where V (the queue's virtual time) is the smallest key among live deliveries, or now if that
is earlier. A tenant that publishes 100,000 events at once gets keys spread over
100,000 × COST_US; another tenant's single event gets key V and is claimed next, instead of
waiting behind the whole flood. A tenant alone on the system is not slowed at all: the key
orders due work, it never makes work wait (that is ``next_attempt_at``).

Retries and leases use wall-clock keys (the time they fall due), so a retry competes with the
tenants' backlogs as if it were published when it fell due. Each API process keeps its own
tenant clocks; a tenant publishing through N processes gets at most N interleaved shares.
"""

from __future__ import annotations

import datetime as dt

COST_US = 1_000  # the virtual cost of one delivery: 1 ms
_MAX_TENANTS = 10_000  # forget clocks that the queue has caught up with beyond this many


def to_key(moment: dt.datetime) -> int:
    """A wall-clock time as a queue key (microseconds since the epoch)."""
    return int(moment.timestamp() * 1_000_000)


class FairClock:
    """Per-tenant finish tags of one process."""

    def __init__(self) -> None:
        self._finish: dict[int, int] = {}

    def assign(self, tenant_id: int, count: int, virtual_time: int) -> list[int]:
        """Keys for ``count`` new deliveries of ``tenant_id``, in order."""
        start = max(virtual_time, self._finish.get(tenant_id, 0))
        self._finish[tenant_id] = start + count * COST_US
        if len(self._finish) > _MAX_TENANTS:
            self._finish = {t: f for t, f in self._finish.items() if f > virtual_time}
        return [start + i * COST_US for i in range(count)]


def virtual_time(head: int | None, now: dt.datetime) -> int:
    """V: the head of the live queue (the smallest key of a live delivery), or now if the
    queue is empty or ahead of the clock."""
    now_key = to_key(now)
    return now_key if head is None else min(int(head), now_key)
