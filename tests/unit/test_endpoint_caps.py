"""Per-endpoint in-flight caps adapt to latency: quick endpoints grow, slow ones stay small."""

from __future__ import annotations

from webhookd.delivery.concurrency import EndpointCaps


def test_a_new_endpoint_starts_small_and_quick_attempts_double_its_cap() -> None:
    caps = EndpointCaps(slots=200, max_cap=100)
    assert caps.cap(1) == 10
    seen = []
    for _ in range(200):
        caps.finished(1, 0.005)
        seen.append(caps.cap(1))
    assert seen[9] == 20 and seen[29] == 40 and seen[69] == 80 and seen[-1] == 100
    assert caps.cap(2) == 10  # per endpoint


def test_a_slow_endpoint_goes_back_to_the_small_cap() -> None:
    caps = EndpointCaps(slots=200, max_cap=100)
    for _ in range(300):
        caps.finished(1, 0.01)
    assert caps.cap(1) == 100
    for _ in range(10):
        caps.finished(1, 10.0)
    assert caps.cap(1) == 10
    for _ in range(50):
        caps.finished(1, 10.0)
    assert caps.cap(1) == 10


def test_fifo_endpoints_have_one_slot_and_small_engines_at_least_one() -> None:
    caps = EndpointCaps(slots=200, max_cap=100)
    caps.ordering(3, fifo=True)
    assert caps.cap(3) == 1
    caps.ordering(3, fifo=False)
    assert caps.cap(3) == 10
    assert EndpointCaps(slots=5, max_cap=100).cap(1) == 1
    assert EndpointCaps(slots=200, max_cap=4).cap(1) == 4
