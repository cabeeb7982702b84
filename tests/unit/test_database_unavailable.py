"""Which exceptions mean "the database is unavailable" (503, retry) rather than a bug (500)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from webhookd.db import database_unavailable, transaction_conflict


class PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def wrapped(orig: BaseException, **kwargs: object) -> DBAPIError:
    return DBAPIError("SELECT 1", None, orig, **kwargs)  # type: ignore[arg-type]


def chained(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "unavailable"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (TimeoutError(), True),
        (wrapped(PgError("57P01")), True),  # admin shutdown: "the database is shutting down"
        (wrapped(PgError("57P03")), True),  # cannot connect now: "starting up"
        (wrapped(PgError("08006")), True),  # connection failure
        (wrapped(PgError("53300")), True),  # too many connections
        (wrapped(Exception("gone"), connection_invalidated=True), True),
        (OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked")), True),
        (chained(RuntimeError("publish failed"), ConnectionRefusedError()), True),
        (wrapped(PgError("23505")), False),  # unique violation: a bug, not an outage
        (IntegrityError("INSERT", None, sqlite3.IntegrityError("UNIQUE constraint")), False),
        (OperationalError("SELECT", None, sqlite3.OperationalError("no such table: x")), False),
        (ValueError("bad"), False),
        (OSError(28, "No space left on device"), False),
    ],
)
def test_database_unavailable(exc: BaseException, unavailable: bool) -> None:
    assert database_unavailable(exc) is unavailable


@pytest.mark.parametrize(
    ("exc", "conflict"),
    [
        (wrapped(PgError("40P01")), True),  # deadlock detected: this transaction was the victim
        (wrapped(PgError("40001")), True),  # serialization failure
        (chained(RuntimeError("publish failed"), wrapped(PgError("40P01"))), True),
        (wrapped(PgError("23505")), False),  # unique violation
        (wrapped(PgError("57P01")), False),  # an outage, not a conflict
        (ValueError("bad"), False),
    ],
)
def test_transaction_conflict(exc: BaseException, conflict: bool) -> None:
    assert transaction_conflict(exc) is conflict
