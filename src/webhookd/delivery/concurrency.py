"""How many attempts one process keeps in flight to each endpoint, adapted to the
endpoint's latency, so that slow endpoints hold few of the engine's slots.

An endpoint starts at a small cap (1/20 of the engine's slots); each run of ``cap`` quick
attempts doubles it, up to ``WEBHOOKD_ENDPOINT_CONCURRENCY``; once its attempts take a
second or more on average (EWMA), it is back to the small cap. A FIFO endpoint has a cap
of 1 (one delivery at a time anyway).
"""

from __future__ import annotations

SLOW = 1.0  # seconds: an endpoint whose attempts average this much is slow
WEIGHT = 0.2  # of the latest attempt in the moving average


class EndpointCaps:
    def __init__(self, *, slots: int, max_cap: int) -> None:
        self.max_cap = max(1, max_cap)
        self.small = max(1, min(self.max_cap, slots // 20))
        self._cap: dict[int, int] = {}
        self._quick: dict[int, int] = {}  # quick attempts since the cap last changed
        self._latency: dict[int, float] = {}
        self._fifo: set[int] = set()

    def cap(self, endpoint_id: int) -> int:
        if endpoint_id in self._fifo:
            return 1
        return self._cap.get(endpoint_id, self.small)

    def ordering(self, endpoint_id: int, *, fifo: bool) -> None:
        if fifo:
            self._fifo.add(endpoint_id)
        else:
            self._fifo.discard(endpoint_id)

    def finished(self, endpoint_id: int, seconds: float) -> None:
        """An attempt to the endpoint took ``seconds``."""
        previous = self._latency.get(endpoint_id)
        latency = seconds if previous is None else previous + WEIGHT * (seconds - previous)
        self._latency[endpoint_id] = latency
        cap = self._cap.get(endpoint_id, self.small)
        if latency >= SLOW:
            self._cap[endpoint_id], self._quick[endpoint_id] = self.small, 0
            return
        quick = self._quick.get(endpoint_id, 0) + 1
        if quick >= cap and cap < self.max_cap:
            self._cap[endpoint_id], quick = min(self.max_cap, cap * 2), 0
        else:
            self._cap[endpoint_id] = cap
        self._quick[endpoint_id] = quick

    def forget(self, endpoint_id: int) -> None:
        for table in (self._cap, self._quick, self._latency):
            table.pop(endpoint_id, None)
        self._fifo.discard(endpoint_id)
