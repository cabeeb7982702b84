"""How the API batches delivery ids into Celery messages (webhookd.queue.celery.CeleryQueue)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from webhookd.queue.celery import DELIVER_TASK, CeleryQueue


class FakeCelery:
    def __init__(self) -> None:
        self.sent: list[list[int]] = []

    def send_task(self, name: str, *, args: list[Any], retry: bool) -> None:
        assert name == DELIVER_TASK
        self.sent.append(list(args[0]))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("since_last_message", "expected"),
    [
        (None, 0.005),  # nothing sent yet: linger alone
        (0.0, 0.020),  # right after a message: the full spacing
        (0.010, 0.010),  # the rest of the spacing
        (0.016, 0.005),  # spacing nearly over: still at least linger
        (5.0, 0.005),  # after a quiet moment: linger alone
    ],
)
def test_delay_keeps_linger_and_spacing(since_last_message: float | None, expected: float) -> None:
    clock = Clock()
    queue = CeleryQueue(FakeCelery(), linger=0.005, spacing=0.02, clock=clock)  # type: ignore[arg-type]
    if since_last_message is not None:
        queue._last_flush = clock.now - since_last_message
    assert queue.delay() == pytest.approx(expected)


def test_ids_travel_together_and_a_full_batch_goes_at_once() -> None:
    celery = FakeCelery()

    async def scenario() -> None:
        queue = CeleryQueue(celery, max_batch=5, linger=0.01, spacing=0.05)  # type: ignore[arg-type]
        queue.submit([1, 2])
        queue.submit([3])
        await asyncio.sleep(0.05)
        assert celery.sent == [[1, 2, 3]]  # one message after linger
        queue.submit([4])  # within the spacing: waits for it
        await asyncio.sleep(0.005)
        assert celery.sent == [[1, 2, 3]]
        queue.submit([5, 6, 7, 8, 9])  # a full batch leaves at once, with what waited
        await asyncio.sleep(0.01)
        assert celery.sent == [[1, 2, 3], [4, 5, 6, 7, 8, 9]]
        await queue.stop()

    asyncio.run(scenario())
