"""``DriverQuery.numbered`` (asyncpg's ``$n`` form) reuses each shape's SQL and parameter
layout: for every shape, first call or not, it gives exactly what SQLAlchemy's own expansion
gives (the compiler numbers plain parameters before the elements of expanded lists)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Integer, bindparam, select
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.sql.base import Executable

from webhookd.delivery.store import common
from webhookd.delivery.store.driver import DriverQuery
from webhookd.models import Delivery

DIALECT = pg_asyncpg.dialect()  # type: ignore[no-untyped-call]

# A LIMIT the compiler writes into the SQL itself: no layout to reuse, expanded each call.
LITERAL_LIMIT = (
    select(Delivery.id)
    .where(Delivery.id.in_(bindparam("ids", expanding=True)))
    .limit(bindparam("n", type_=Integer, literal_execute=True))
)

CASES: list[tuple[str, Executable, list[dict[str, Any]]]] = [
    (
        "routing: one expanding list after a plain parameter",
        common.ROUTING,
        [{"tenants": t} for t in ([1], [1, 2, 3], [7], [4, 5, 6], [9, 8])],
    ),
    (
        "held rows: a list and a plain owner",
        common._HELD[True],
        [{"ids": ids, "owner": o} for ids, o in (([1], "a"), ([2, 3], "b"), ([4], "c"))],
    ),
    (
        "a value rendered into the SQL",
        LITERAL_LIMIT,
        [{"ids": [1, 2], "n": 5}, {"ids": [3, 4], "n": 7}, {"ids": [5], "n": 5}],
    ),
]


def expected(query: DriverQuery, values: dict[str, Any]) -> tuple[str, list[Any]]:
    named = {p.name: query._value(p, values) for p in query.params}
    expanded = query.compiled.construct_expanded_state(named)
    return expanded.statement, list(expanded.positional_parameters)


@pytest.mark.parametrize(("name", "statement", "calls"), CASES, ids=[c[0] for c in CASES])
def test_numbered_gives_what_the_compiler_gives(
    name: str, statement: Executable, calls: list[dict[str, Any]]
) -> None:
    query = DriverQuery(statement, DIALECT)
    for values in [*calls, *calls]:  # every shape once new, then from the cache
        assert query.numbered(values) == expected(query, values)


def test_a_rendered_limit_is_in_the_sql() -> None:
    query = DriverQuery(LITERAL_LIMIT, DIALECT)
    assert query.numbered({"ids": [1], "n": 5})[0].endswith("LIMIT 5")
    assert query.numbered({"ids": [2], "n": 9})[0].endswith("LIMIT 9")
