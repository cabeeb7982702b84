"""Recording outcomes runs again when PostgreSQL aborted its transaction to break a deadlock
(SQLSTATE 40P01 or 40001: nothing of it was kept), and only then."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from webhookd.delivery import engine
from webhookd.delivery.store import Recorded


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


class _Db:
    def __init__(self) -> None:
        self.transactions = 0

    @contextlib.asynccontextmanager
    async def write_connection(self) -> AsyncIterator[object]:
        self.transactions += 1
        yield object()


class _Store:
    """Fails its first ``failures`` transactions with ``sqlstate``."""

    def __init__(self, failures: int, sqlstate: str) -> None:
        self.failures, self.sqlstate = failures, sqlstate

    async def record_outcomes(self, conn: object, **_: Any) -> Recorded:
        if self.failures:
            self.failures -= 1
            raise DBAPIError("UPDATE deliveries", None, _Orig(self.sqlstate))
        return Recorded([])


@pytest.mark.parametrize(
    ("failures", "sqlstate", "transactions", "recorded"),
    [
        (0, "40P01", 1, True),  # nothing to retry
        (1, "40P01", 2, True),  # a deadlock victim runs again
        (2, "40001", 3, True),  # a serialization failure too
        (3, "40P01", 4, True),  # up to three times again
        (4, "40P01", 4, False),  # then the error stands (the leases take over)
        (1, "23503", 1, False),  # any other error is not retried
    ],
)
def test_a_deadlocked_record_runs_again(
    failures: int, sqlstate: str, transactions: int, recorded: bool, monkeypatch: Any
) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(engine.asyncio, "sleep", no_wait)
    db, store = _Db(), _Store(failures, sqlstate)
    run = engine.record(db, store, "owner", [], policy=None)  # type: ignore[arg-type]
    if recorded:
        assert asyncio.run(run).transitions == []
    else:
        with pytest.raises(DBAPIError):
            asyncio.run(run)
    assert db.transactions == transactions
