"""The cache of authenticated API keys: hits, expiry, invalidation, and its races."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from webhookd.config import Settings
from webhookd.db import Database
from webhookd.tenant.keycache import ApiKeyCache, AuthTenant

ALICE = AuthTenant(id=1, rate_limit=100, public_id=uuid.UUID(int=1))
BOB = AuthTenant(id=2, rate_limit=50, public_id=uuid.UUID(int=2))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hit_lasts_ttl_seconds() -> None:
    clock = Clock()
    cache = ApiKeyCache(ttl=5, clock=clock)
    assert cache.get("h1") is None
    cache.put("h1", ALICE, generation=cache.generation)
    clock.now += 4.9
    assert cache.get("h1") == ALICE
    clock.now += 0.1
    assert cache.get("h1") is None


def test_ttl_zero_never_caches() -> None:
    cache = ApiKeyCache(ttl=0, clock=Clock())
    cache.put("h1", ALICE, generation=cache.generation)
    assert cache.get("h1") is None


def test_forget_drops_only_that_tenant() -> None:
    cache = ApiKeyCache(ttl=5, clock=Clock())
    for key_hash, tenant in (("a1", ALICE), ("a2", ALICE), ("b1", BOB)):
        cache.put(key_hash, tenant, generation=cache.generation)
    cache.forget_tenant(ALICE.id)
    assert (cache.get("a1"), cache.get("a2"), cache.get("b1")) == (None, None, BOB)


def test_a_lookup_that_started_before_a_forget_is_not_stored() -> None:
    cache = ApiKeyCache(ttl=5, clock=Clock())
    started = cache.generation  # the lookup reads the row as it was before the change...
    cache.forget_tenant(ALICE.id)  # ...the change commits meanwhile
    cache.put("a1", ALICE, generation=started)
    assert cache.get("a1") is None


def test_bounded_size() -> None:
    cache = ApiKeyCache(ttl=5, clock=Clock())
    cache.MAX_ENTRIES = 3
    for n in range(4):
        cache.put(f"h{n}", ALICE, generation=cache.generation)
    assert cache.get("h3") == ALICE
    assert sum(cache.get(f"h{n}") is not None for n in range(4)) <= 3


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_forget_on_commit_forgets_now_and_after_the_commit(outcome: str) -> None:
    class Rollback(Exception):
        pass

    async def scenario() -> None:
        db = Database(Settings(database_url="sqlite://"))
        cache = ApiKeyCache(ttl=5, clock=Clock())
        cache.put("a1", ALICE, generation=cache.generation)
        with contextlib.suppress(Rollback):
            async with db.write() as session:
                cache.forget_on_commit(session, ALICE.id)
                assert cache.get("a1") is None
                # A lookup before the commit still reads the old row and may cache it...
                cache.put("a1", ALICE, generation=cache.generation)
                if outcome == "rollback":
                    raise Rollback
        # ...the commit forgets it again; a rollback changed nothing, so it may stay.
        assert (cache.get("a1") is None) == (outcome == "commit")
        await db.dispose()

    asyncio.run(scenario())


class Lookups:
    """A lookup that answers from a dict and counts its calls."""

    def __init__(self, rows: dict[str, AuthTenant]) -> None:
        self.rows = rows
        self.calls = 0

    async def __call__(self, key_hash: str) -> AuthTenant | None:
        self.calls += 1
        await asyncio.sleep(0)
        return self.rows.get(key_hash)


@pytest.mark.parametrize(
    ("found", "at_expiry"),
    [(ALICE, ALICE), (BOB, BOB), (None, None)],  # still valid, changed, rotated away
)
def test_an_entry_in_use_is_renewed_before_it_expires(
    found: AuthTenant | None, at_expiry: AuthTenant | None
) -> None:
    async def scenario() -> None:
        clock = Clock()
        lookups = Lookups({"a1": found} if found else {})
        cache = ApiKeyCache(ttl=4, lookup=lookups, clock=clock)
        cache.put("a1", ALICE, generation=cache.generation)
        clock.now += 2.9
        assert cache.get("a1") == ALICE
        assert lookups.calls == 0  # not yet three quarters of the ttl
        clock.now += 0.1
        assert [cache.get("a1") for _ in range(50)] == [ALICE] * 50  # keeps serving...
        await asyncio.sleep(0.01)
        assert lookups.calls == 1  # ...while one renewal runs, not one per request
        clock.now += 1.5  # past the first entry's expiry
        assert cache.get("a1") == at_expiry

    asyncio.run(scenario())


def test_a_failing_renewal_leaves_the_entry_to_expire() -> None:
    async def failing(key_hash: str) -> AuthTenant | None:
        raise ConnectionError("database down")

    async def scenario() -> None:
        clock = Clock()
        cache = ApiKeyCache(ttl=4, lookup=failing, clock=clock)
        cache.put("a1", ALICE, generation=cache.generation)
        clock.now += 3.5
        assert cache.get("a1") == ALICE
        await asyncio.sleep(0.01)
        assert cache.get("a1") == ALICE
        clock.now += 0.5
        assert cache.get("a1") is None

    asyncio.run(scenario())


def test_load_caches_found_keys_only() -> None:
    async def scenario() -> None:
        lookups = Lookups({"a1": ALICE})
        cache = ApiKeyCache(ttl=5, lookup=lookups, clock=Clock())
        assert await cache.load("a1") == ALICE
        assert await cache.load("nope") is None
        assert (cache.get("a1"), cache.get("nope")) == (ALICE, None)
        assert lookups.calls == 2

    asyncio.run(scenario())
