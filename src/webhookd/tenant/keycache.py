"""Authenticated API keys, remembered by this process for a few seconds.

Every tenant request authenticates, and looking the key's hash up in the database was the
largest single cost of a publish. A hit skips the database; an entry lives ``ttl`` seconds.

- In this process, rotating a tenant's key or changing its rate limit forgets the tenant's
  entries when the change commits, so the old key is refused at once.
- Other API processes keep their entry until it expires: there a rotated key keeps working
  for at most ``ttl`` seconds (docs/SECURITY.md).
- Failed lookups are never cached: a wrong key always goes to the database, and the
  brute-force throttle counts it as before.
- Only keyed hashes are kept, never keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class AuthTenant:
    """The calling tenant, as the API key identifies it."""

    id: int
    rate_limit: int


class ApiKeyCache:
    MAX_ENTRIES = 100_000

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[AuthTenant, float]] = {}
        # Bumped by every forget: a lookup that started before a forget must not store what
        # it read (it may have read the row as it was before the change committed).
        self.generation = 0

    def get(self, key_hash: str) -> AuthTenant | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if self._clock() >= entry[1]:
            del self._entries[key_hash]
            return None
        return entry[0]

    def put(self, key_hash: str, tenant: AuthTenant, *, generation: int) -> None:
        """Remember a successful lookup that began while ``generation`` was current."""
        if self.ttl <= 0 or generation != self.generation:
            return
        if len(self._entries) >= self.MAX_ENTRIES and key_hash not in self._entries:
            self._entries.clear()  # bounded memory; the next lookups refill it
        self._entries[key_hash] = (tenant, self._clock() + self.ttl)

    def forget_tenant(self, tenant_id: int) -> None:
        self.generation += 1
        for key_hash in [h for h, (t, _) in self._entries.items() if t.id == tenant_id]:
            del self._entries[key_hash]

    def forget_on_commit(self, session: AsyncSession, tenant_id: int) -> None:
        """Forget the tenant now and again once ``session`` commits the change: a lookup
        in between may have read (and cached) the row as it was before."""
        self.forget_tenant(tenant_id)
        event.listen(
            session.sync_session,
            "after_commit",
            lambda _session: self.forget_tenant(tenant_id),
            once=True,
        )
