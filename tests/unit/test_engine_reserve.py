"""What the engine takes at publish (``DeliveryEngine.reserve``): only what a claim would take
next, within the free slots and each endpoint's cap; a rollback gives the slots back, and
what the gate hands back at commit gives its slot up."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest

from tests.unit.test_engine_wakeups import CAP, engine
from webhookd.delivery.engine import CLAIM_SPACING, DeliveryEngine
from webhookd.delivery.store import Claim

A, B = 1, 2


def ready(**state: Any) -> DeliveryEngine:
    """An engine as after a claim that saw all due work, with ``state`` changed."""
    eng = engine()
    eng._loops = [None]  # type: ignore[list-item]  # started
    eng._new_work = False
    if state.pop("woken", False):
        eng._wake.set()
    for name, value in state.items():
        setattr(eng, f"_{name}", value)
    return eng


@pytest.mark.parametrize(
    ("state", "endpoints", "taken"),
    [
        ({}, [A, B, A], [0, 1, 2]),
        ({"new_work": True}, [A], []),  # woken since the last claim: other work may be due
        ({"claimed_all": True}, [A], []),  # the last claim was full: more may be due
        ({"held_back": {B}}, [A], []),  # rows left behind at a cap, not searched past yet
        # ... searched past, nothing else due: the others' new rows go, B's wait for claims
        ({"held_back": {B}, "search_past_saturated": False}, [A, B, A], [0, 2]),
        ({"woken": True}, [A], []),  # a claim is pending (an endpoint with room, a timer)
        ({"claiming": True}, [A], []),  # a claim is counting the slots
        ({"stopping": True}, [A], []),
        ({"loops": []}, [A], []),  # not started
        ({"by_endpoint": {A: CAP}}, [A, B, A], [1]),  # A at its cap
        ({"by_endpoint": {A: CAP - 1}}, [A, A, B], [0, 2]),  # room for one more of A
    ],
)
def test_reserve_takes_only_what_a_claim_would_take_next(
    state: dict[str, Any], endpoints: list[int], taken: list[int]
) -> None:
    async def scenario() -> None:
        if "by_endpoint" in state:
            state["by_endpoint"] = collections.Counter(state["by_endpoint"])
        eng = ready(**state)
        eng.caps._cap[A] = eng.caps._cap[B] = CAP
        in_flight = eng._in_flight
        assert eng.reserve(endpoints) == taken
        assert eng._in_flight == in_flight + len(taken)

    asyncio.run(scenario())


def test_reserve_stays_within_the_free_slots() -> None:
    async def scenario() -> None:
        eng = ready()
        eng._in_flight = eng.settings.delivery_concurrency - 2
        assert eng.reserve([A, B, A]) == [0, 1]
        eng._claim_started -= CLAIM_SPACING  # not refused for its spacing, below
        assert eng.reserve([B]) == []

    asyncio.run(scenario())


def test_a_rollback_gives_the_slots_back() -> None:
    async def scenario() -> None:
        eng = ready()
        assert eng.reserve([A, A, B]) == [0, 1, 2]
        eng.release([A, A, B])
        assert eng._in_flight == 0 and not eng._by_endpoint
        assert eng._slot_freed.is_set()

    asyncio.run(scenario())


def test_what_the_gate_hands_back_gives_its_slot_up() -> None:
    async def scenario() -> None:
        eng = ready()
        eng.reserve([A, B])
        eng.adopt(Claim([]), [A, B])  # the gate handed both back (a circuit opened meanwhile)
        assert eng._in_flight == 0 and not eng._by_endpoint
        assert not eng._attempt_tasks

    asyncio.run(scenario())


def test_reservations_are_spaced_like_the_claims_woken_by_new_work() -> None:
    """A publish within ``CLAIM_SPACING`` of the last claim or reservation is left to the
    next claim, which takes several at once."""

    async def scenario() -> None:
        eng = ready()
        assert eng.reserve([A]) == [0]
        assert eng.reserve([B]) == []  # right after: left to the (spaced) claim
        eng._claim_started -= CLAIM_SPACING  # as if that was 5 ms ago
        assert eng.reserve([B]) == [0]
        eng._claim_started = asyncio.get_running_loop().time()  # a claim just began
        assert eng.reserve([A]) == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("held_back", "in_flight", "claiming", "later"),
    [
        ({A}, CAP, False, True),  # at its cap, rows left behind: claimed when it has room
        ({A}, CAP - 1, False, False),  # room now: a claim can take the new row
        (set(), CAP, False, False),  # nothing left behind: no room-claim will come by itself
        ({A}, CAP, True, False),  # a claim is under way: its outcome decides
    ],
)
def test_a_publish_to_a_saturated_endpoint_wakes_no_claim(
    held_back: set[int], in_flight: int, claiming: bool, later: bool
) -> None:
    eng = ready(held_back=held_back, claiming=claiming)
    eng.caps._cap[A] = CAP
    eng._by_endpoint[A] = in_flight
    assert eng.claims_later(A) is later
