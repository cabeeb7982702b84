"""An endpoint's rate limit, enforced and measured over time (embedded engine, SQLite and
PostgreSQL; the Celery stack with two workers is in test_policies_distributed.py): waiting
for a token uses no attempt and never holds back the other endpoints."""

from __future__ import annotations

from tests.fixtures.receiver import Received

RATE, EVENTS = 20.0, 100


def per_window(requests: list[Received]) -> list[int]:
    """Requests in each whole 1-second window after the first second."""
    start = requests[0].at
    counts: dict[int, int] = {}
    for r in requests:
        window = int(r.at - start)
        counts[window] = counts.get(window, 0) + 1
    last = max(counts)
    return [counts.get(w, 0) for w in range(1, last)]  # the last window is partial


def check_rate(requests: list[Received], rate: float) -> None:
    windows = per_window(requests)
    assert windows, "the burst went out within a second"
    assert max(windows) <= rate * 1.1, windows
    assert min(windows) >= rate * 0.6, windows  # and it is not throttled far below


def test_a_burst_arrives_at_the_rate_limit(tenant, receiver) -> None:
    receiver.plan("/rl/limited")
    receiver.plan("/rl/free")
    tenant.add_endpoint(receiver.url("/rl/limited"), rate_limit=RATE)
    tenant.add_endpoint(receiver.url("/rl/free"))
    for n in range(EVENTS):
        assert tenant.publish(event_id=f"evt_rl_{n}", n=n).status_code == 202
    free = receiver.wait_for(EVENTS, "/rl/free", timeout=10)
    assert free[-1].at - free[0].at < 3  # the other endpoint is not held back
    limited = receiver.wait_for(EVENTS, "/rl/limited", timeout=EVENTS / RATE + 10)
    check_rate(limited, RATE)
    assert len({r.header("webhook-id") for r in limited}) == EVENTS  # each once
    assert {r.header("X-Webhook-Attempt") for r in limited} == {"1"}  # no attempt used


def test_fractional_rate(tenant, receiver) -> None:
    receiver.plan("/rl/slow")
    tenant.add_endpoint(receiver.url("/rl/slow"), rate_limit=2.5)
    for n in range(6):
        assert tenant.publish(event_id=f"evt_rl_frac_{n}").status_code == 202
    requests = receiver.wait_for(6, "/rl/slow", timeout=10)
    span = requests[-1].at - requests[0].at
    assert span >= (6 - 1 - 1) / 2.5 - 0.1, span  # one burst token, then 2.5/s
