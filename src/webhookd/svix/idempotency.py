"""``idempotency-key`` on the Svix API's POSTs: the same key from the same caller to the
same path within a day gets the same answer again, and the request is not carried out
twice. (The same key sent to another path is another key: an answer is never replayed to a
request it was not made for.)

The answer is remembered in the transaction that made it (the route's write session), so
either both are committed or neither; a key arriving again while the first request is still
running is carried out again (as by Svix: keys guard against retries, not races).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import orjson
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from webhookd.db import Database, utcnow
from webhookd.svix import repository

KEEP = dt.timedelta(hours=24)
MAX_KEY = 255
ADMIN = "admin"  # the caller that is the operator (a tenant is its public id)


@dataclass(frozen=True, slots=True)
class Idempotency:
    caller: str  # "admin" or the tenant's public id
    key: str | None  # hashed with the request's method and path; None: nothing remembered

    @classmethod
    def of(cls, caller: str, key: str | None, *, method: str, path: str) -> Idempotency:
        if key is None:
            return cls(caller, None)
        scoped = hashlib.sha256(f"{method} {path}\n{key}".encode()).hexdigest()
        return cls(caller, scoped)

    async def replay(self, session: AsyncSession) -> Response | None:
        """The answer given before to this key, if any (within a day)."""
        if self.key is None:
            return None
        row = await repository.get(session, caller=self.caller, key=self.key, since=utcnow() - KEEP)
        if row is None:
            return None
        return Response(row.body, status_code=row.status, media_type="application/json")

    async def replay_in(self, db: Database) -> Response | None:
        """:meth:`replay`, in a read session of its own (a route without one)."""
        if self.key is None:
            return None
        async with db.read() as session:
            return await self.replay(session)

    async def remember_in(self, db: Database, status: int, answer: BaseModel) -> Response:
        """:meth:`remember`, in a write transaction of its own: for an answer whose work
        committed in its own transaction (a publish, by the group commit)."""
        if self.key is None:
            return await self.remember(None, status, answer)
        async with db.write() as session:
            return await self.remember(session, status, answer)

    async def remember(
        self, session: AsyncSession | None, status: int, answer: BaseModel
    ) -> Response:
        """The answer as a response, remembered under the key (in ``session``'s
        transaction)."""
        body = orjson.dumps(answer.model_dump(mode="json", by_alias=True))
        if self.key is not None and session is not None:
            now = utcnow()
            row = {"caller": self.caller, "key": self.key, "status": status, "created_at": now}
            await repository.insert(session, {**row, "body": body.decode()}, expired=now - KEEP)
        return Response(body, status_code=status, media_type="application/json")
