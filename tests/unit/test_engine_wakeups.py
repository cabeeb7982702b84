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
