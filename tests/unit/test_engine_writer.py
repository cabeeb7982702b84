"""The writer groups outcomes that keep coming a few ms apart, even with one attempt out at a
time (deliveries leased at publish go out one by one at everyday load), and records a lone
outcome at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.unit.test_engine_wakeups import engine
from webhookd.delivery import engine as engine_module


def test_outcomes_a_few_ms_apart_share_a_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # A long linger, so that the test does not depend on the machine's timing.
    monkeypatch.setattr(engine_module, "WRITE_LINGER", 0.5)

    async def scenario() -> None:
        eng = engine()
        recorded: list[list[Any]] = []

        async def record(batch: list[Any]) -> None:
            recorded.append(list(batch))

        eng._record = record  # type: ignore[method-assign]
        writer = asyncio.create_task(eng._write_loop())
        try:
            await push(eng, "first")  # nothing came before it: recorded at once
            await wait(lambda: recorded == [["first"]])
            await push(eng, "second")  # right after: more are likely, it waits for them
            await asyncio.sleep(0.02)
            await push(eng, "third")
            await wait(lambda: len(recorded) == 2)
            assert recorded == [["first"], ["second", "third"]]
        finally:
            writer.cancel()

    asyncio.run(scenario())


async def push(eng: engine_module.DeliveryEngine, name: str) -> None:
    """One attempt, alone in flight, ends (the writer gives its slot back once recorded)."""
    eng._in_flight += 1
    eng._results.put_nowait(Named(name))  # type: ignore[arg-type]
    await asyncio.sleep(0)


async def wait(check: Any) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in 5 s")


class Named(str):
    """An outcome as far as the writer sees it: its job's delivery id."""

    @property
    def job(self) -> Any:
        return self

    @property
    def delivery_id(self) -> str:
        return str(self)
