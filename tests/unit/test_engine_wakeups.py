"""The dispatcher's wake-ups around per-endpoint caps: a claim that leaves an endpoint's
rows behind must lead to another claim as soon as the endpoint has room, never to the poll.

The race, pinned without timing: every attempt to the endpoint ends *while* the claim that
holds its rows back is still running (an instant receiver does that), so the endings saw
the previous claim's held-back set, not this one's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from webhookd.config import Settings
from webhookd.delivery.engine import DeliveryEngine
from webhookd.delivery.policy import EndpointPolicy
from webhookd.delivery.store import Claim

ENDPOINT = 7
CAP = 4


class NoDatabase:
    @contextlib.asynccontextmanager
    async def write_connection(self) -> AsyncIterator[None]:
        yield None


class ScriptedStore:
    """A store whose claims the test writes."""

    def __init__(self) -> None:
        self.claim_due: Any = None


def engine() -> DeliveryEngine:
    settings = Settings(endpoint_concurrency=CAP)
    return DeliveryEngine(
        settings,
        NoDatabase(),  # type: ignore[arg-type]
        ScriptedStore(),  # type: ignore[arg-type]
        client=None,  # type: ignore[arg-type]
        policy=EndpointPolicy.from_settings(settings),
    )


@pytest.mark.parametrize(
    ("in_flight", "ended_during_claim", "woken"),
    [
        (CAP, CAP, True),  # all ended meanwhile: room now, claim again at once
        (CAP, 1, True),  # a quarter of the slots free is enough
        (CAP, 0, False),  # still full: the next ending wakes the dispatcher
    ],
)
def test_a_claim_that_holds_rows_back_wakes_when_the_endpoint_has_room(
    monkeypatch: pytest.MonkeyPatch, in_flight: int, ended_during_claim: int, woken: bool
) -> None:
    async def scenario() -> None:
        eng = engine()
        eng._by_endpoint[ENDPOINT] = in_flight
        eng._held_back = set()  # the previous claim reached its limit: nothing held back

        async def claim_due(conn: Any, **kwargs: Any) -> Claim:
            for _ in range(ended_during_claim):
                eng._endpoint_done(ENDPOINT)
            return Claim([], {ENDPOINT})  # the endpoint was at its cap

        eng.store.claim_due = claim_due  # type: ignore[method-assign]
        assert await eng._claim(10) == []
        assert eng._wake.is_set() is woken

    asyncio.run(scenario())


def test_after_an_exhaustive_search_claims_read_only_the_head_until_new_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Looking past a saturated endpoint reads its whole backlog when little else is due;
    once a search found nothing else, the next claims skip that search until a publish,
    a retry or the poll may have brought new work."""

    async def scenario() -> None:
        eng = engine()
        eng._by_endpoint[ENDPOINT] = CAP  # saturated throughout
        searched: list[bool] = []
        exhausted = [True]

        async def claim_due(conn: Any, **kwargs: Any) -> Claim:
            searched.append(kwargs["search_past_saturated"])
            return Claim([], {ENDPOINT}, exhausted[0])

        eng.store.claim_due = claim_due  # type: ignore[method-assign]
        await eng._claim(10)  # searches, finds nothing beyond the saturated endpoint
        await eng._claim(10)  # an internal wake-up: the head of the queue only
        eng.wake()  # a publish
        exhausted[0] = False
        await eng._claim(10)
        await eng._claim(10)  # that search was not exhaustive: keep searching
        assert searched == [True, False, True, True]

    asyncio.run(scenario())


# (what happens between two claims, the search the second claim makes): after a claim that
# saw all due work, a publish's rows (queue keys from ``from_key`` on) need a search from
# there only; anything else that may have made rows due (a retry, a hand-back, the poll, a
# wake-up that carries no key) needs a search from the head of the queue.
FULL, NONE = (True, None), (False, None)


@pytest.mark.parametrize(
    ("between", "search"),
    [
        ([], NONE),
        ([("wake", 500)], (True, 500)),
        ([("wake", 500), ("wake", 300)], (True, 300)),
        ([("wake", 300), ("wake", 500)], (True, 300)),
        ([("wake", 500), ("wake", None)], FULL),
        ([("wake", None), ("wake", 500)], FULL),
        ([("wake", 500), ("room", None)], FULL),  # a held-back endpoint has room again
        ([("wake", 500), ("all", None)], FULL),  # the poll
    ],
)
def test_a_publish_after_an_exhaustive_search_is_searched_for_from_its_own_queue_keys(
    between: list[tuple[str, int | None]], search: tuple[bool, int | None]
) -> None:
    async def scenario() -> list[tuple[bool, int | None]]:
        eng = engine()
        made: list[tuple[bool, int | None]] = []

        async def claim_due(conn: Any, **kwargs: Any) -> Claim:
            made.append((kwargs["search_past_saturated"], kwargs["search_from"]))
            return Claim([], {ENDPOINT}, True)  # everything else due was seen

        eng.store.claim_due = claim_due  # type: ignore[method-assign]
        eng._by_endpoint[ENDPOINT] = CAP
        await eng._claim(10)
        for kind, key in between:
            if kind == "wake":
                eng.wake(key)
            elif kind == "room":
                eng._held_back = {ENDPOINT}
                eng._by_endpoint[ENDPOINT] = 1
                eng._endpoint_done(ENDPOINT)
            else:
                eng._search_all()
        await eng._claim(10)
        return made

    assert asyncio.run(scenario()) == [FULL, search]


def test_work_that_comes_while_a_claim_runs_is_searched_for_by_the_next_claim() -> None:
    """A claim that saw everything due when it read the queue must not switch the search
    off if a publish (or anything else) woke the engine while it ran: that work may have
    been committed after the claim's read."""

    async def scenario() -> list[tuple[bool, int | None]]:
        eng = engine()
        eng._by_endpoint[ENDPOINT] = CAP
        made: list[tuple[bool, int | None]] = []

        async def claim_due(conn: Any, **kwargs: Any) -> Claim:
            made.append((kwargs["search_past_saturated"], kwargs["search_from"]))
            if len(made) == 1:
                eng.wake(900)  # committed while this claim ran
            return Claim([], {ENDPOINT}, True)

        eng.store.claim_due = claim_due  # type: ignore[method-assign]
        await eng._claim(10)
        await eng._claim(10)
        await eng._claim(10)
        return made

    assert asyncio.run(scenario()) == [FULL, FULL, NONE]


def test_an_endpoint_with_room_again_after_a_claim_is_searched_for_from_the_head() -> None:
    """Its attempts ended while the claim that held its rows back ran (they checked the
    previous claim's held-back set): its rows may lie anywhere, so the next claim searches
    from the head of the queue even if only a publish came since."""

    async def scenario() -> list[tuple[bool, int | None]]:
        eng = engine()
        made: list[tuple[bool, int | None]] = []
        eng._by_endpoint[ENDPOINT] = CAP

        async def claim_due(conn: Any, **kwargs: Any) -> Claim:
            made.append((kwargs["search_past_saturated"], kwargs["search_from"]))
            if len(made) == 1:
                for _ in range(CAP):
                    eng._endpoint_done(ENDPOINT)
            return Claim([], {ENDPOINT}, True)

        eng.store.claim_due = claim_due  # type: ignore[method-assign]
        await eng._claim(10)
        eng.wake(500)
        await eng._claim(10)
        return made

    assert asyncio.run(scenario()) == [FULL, FULL]


def test_wakes_soon_after_a_claim_share_the_next_claim() -> None:
    """Publishes a few ms apart each wake the dispatcher: the claim they cause runs
    ``CLAIM_SPACING`` after the previous one began, and takes all of them at once."""
    from webhookd.delivery.engine import CLAIM_SPACING

    async def scenario() -> list[float]:
        eng = engine()
        loop = asyncio.get_running_loop()
        started: list[float] = []

        async def claim_due(conn: Any, **kwargs: Any) -> Claim:
            started.append(loop.time())
            return Claim([], set(), True)

        eng.store.claim_due = claim_due  # type: ignore[method-assign]
        dispatcher = asyncio.create_task(eng._dispatch_loop())
        while not started:  # the first claim, at start-up
            await asyncio.sleep(0)
        for _ in range(5):  # five publishes, the dispatcher running between them
            eng.wake(1)
            for _ in range(3):
                await asyncio.sleep(0)
        await asyncio.sleep(CLAIM_SPACING * 4)
        eng._stopping = True
        eng.wake()
        await asyncio.wait_for(dispatcher, timeout=5)
        return started

    started = asyncio.run(scenario())
    assert len(started) == 2, started  # not one claim per wake
    assert started[1] - started[0] >= CLAIM_SPACING - 0.001  # timers may fire 1 ms early


def test_an_endpoint_at_its_cap_again_does_not_make_claims_search_past_it() -> None:
    """Draining one endpoint's large backlog: its attempts end, it has room, a claim fills
    its cap again. A claim made then (more slots free) must not look past it: that search
    reads its whole backlog (~90 ms at 1M rows) and can find nothing new. Several such
    searches a second cost a third of the drain at 1M (bench/scale.py)."""

    async def scenario() -> list[tuple[bool, int | None]]:
        eng = engine()
        made: list[tuple[bool, int | None]] = []
        eng._by_endpoint[ENDPOINT] = CAP

        async def claim_due(conn: Any, **kwargs: Any) -> Claim:
            made.append((kwargs["search_past_saturated"], kwargs["search_from"]))
            at_cap = eng._by_endpoint.get(ENDPOINT, 0) >= CAP
            if not at_cap:
                eng._by_endpoint[ENDPOINT] = CAP  # this claim fills the cap again
            searched = kwargs["search_past_saturated"] and at_cap
            return Claim([], {ENDPOINT}, searched)

        eng.store.claim_due = claim_due  # type: ignore[method-assign]
        await eng._claim(10)  # the endpoint at its cap: one search, nothing else due
        eng._held_back = {ENDPOINT}
        eng._endpoint_done(ENDPOINT)  # an attempt ends: room again
        assert eng._wake.is_set()
        await eng._claim(10)  # its rows may lie anywhere: from the head
        await eng._claim(10)  # at its cap again: the head only
        eng.wake(700)  # a publish: search from its queue keys
        await eng._claim(10)
        return made

    assert asyncio.run(scenario()) == [FULL, FULL, NONE, (True, 700)]
