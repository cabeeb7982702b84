"""Authenticated API keys, remembered by this process for a few seconds.

Every tenant request authenticates; a hit skips the database lookup of the key's hash. An
entry lives ``ttl`` seconds.

- In this process, rotating a tenant's key or changing its rate limit forgets the tenant's
  entries when the change commits, so the old key is refused at once.
- Other API processes keep their entry until it expires: there a rotated key keeps working
  for at most ``ttl`` seconds (docs/SECURITY.md).
- Failed lookups are never cached: a wrong key always goes to the database, and the
  brute-force throttle counts it as before.
- Only keyed hashes are kept, never keys.
- A key in use is looked up again in the background once three quarters of its ``ttl`` have
  passed, while its entry keeps serving: under steady load an entry is renewed before it
  expires, so the requests in flight with one key never all miss at once. No entry outlives
  its ``ttl``: a renewal that finds the key gone drops the entry, and one that fails leaves
  it to expire.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from webhookd.db import after_commit
from webhookd.ids import Kind, format_id
from webhookd.tenant import repository


@dataclass(frozen=True)
class AuthTenant:
    """The tenant a request acts for: the one its API key identifies, or the one the
    operator's request names."""

    id: int  # the row id: internal
    rate_limit: int
    public_id: uuid.UUID
    uid: str | None = None

    @functools.cached_property
    def ref(self) -> str:
        """The public id (``tnt_…``)."""
        return format_id(Kind.TENANT, self.public_id)

    def is_named_by(self, ref: str) -> bool:
        """Whether ``ref`` (a tenant id or uid) names this tenant."""
        return ref == self.ref or (self.uid is not None and ref == self.uid)


Lookup = Callable[[str], Awaitable[AuthTenant | None]]
REF_PREFIX = "ref:"  # cache keys of tenants named by id or uid (the operator's publishes)


async def lookup_tenant(engine: AsyncEngine, key: str) -> AuthTenant | None:
    """The tenant of a cache key: the keyed hash of an API key, or ``ref:`` + a tenant's id
    or uid."""
    if key.startswith(REF_PREFIX):
        found = await repository.auth_row_by_ref(engine, key.removeprefix(REF_PREFIX))
    else:
        found = await repository.auth_row_by_key_hash(engine, key)
    return None if found is None else AuthTenant(*found)


class ApiKeyCache:
    MAX_ENTRIES = 100_000
    RENEW_AFTER = 0.75  # of the ttl

    def __init__(
        self, ttl: float, lookup: Lookup | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._lookup = lookup
        self._clock = clock
        # key hash -> (tenant, expires at, renew from)
        self._entries: dict[str, tuple[AuthTenant, float, float]] = {}
        self._renewing: dict[str, asyncio.Task[None]] = {}
        # Bumped by every forget: a lookup that started before a forget must not store what
        # it read (it may have read the row as it was before the change committed).
        self.generation = 0

    def get(self, key_hash: str) -> AuthTenant | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        tenant, expires, renew = entry
        now = self._clock()
        if now >= expires:
            del self._entries[key_hash]
            return None
        if now >= renew and self._lookup is not None and key_hash not in self._renewing:
            task = asyncio.get_running_loop().create_task(self._renew(key_hash))
            self._renewing[key_hash] = task
        return tenant

    async def load(self, key_hash: str) -> AuthTenant | None:
        """Look the key up (a wrong key is never cached) and remember what was found."""
        if self._lookup is None:
            raise RuntimeError("this cache has no lookup: it only serves what put() stored")
        generation = self.generation
        tenant = await self._lookup(key_hash)
        if tenant is not None:
            self.put(key_hash, tenant, generation=generation)
        return tenant

    async def _renew(self, key_hash: str) -> None:
        try:
            if await self.load(key_hash) is None:
                self._entries.pop(key_hash, None)  # the key was rotated or its tenant deleted
        except Exception:  # noqa: S110 - the database is failing: the entry expires as it would
            pass
        finally:
            del self._renewing[key_hash]

    def put(self, key_hash: str, tenant: AuthTenant, *, generation: int) -> None:
        """Remember a successful lookup that began while ``generation`` was current."""
        if self.ttl <= 0 or generation != self.generation:
            return
        if len(self._entries) >= self.MAX_ENTRIES and key_hash not in self._entries:
            self._entries.clear()  # bounded memory; the next lookups refill it
        now = self._clock()
        self._entries[key_hash] = (tenant, now + self.ttl, now + self.ttl * self.RENEW_AFTER)

    def forget_tenant(self, tenant_id: int) -> None:
        self.generation += 1
        for key_hash in [h for h, (t, *_) in self._entries.items() if t.id == tenant_id]:
            del self._entries[key_hash]

    def forget_on_commit(self, session: AsyncSession, tenant_id: int) -> None:
        """Forget the tenant now and again once ``session`` commits the change: a lookup
        in between may have read (and cached) the row as it was before."""
        self.forget_tenant(tenant_id)
        after_commit(session, lambda: self.forget_tenant(tenant_id))
