"""Tenant scoping lives in one place, checked on the source: queries are written only in
repositories and the delivery store, and every repository query of tenant-owned rows takes
the tenant (or says why not, with ``@cross_tenant``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import webhookd

SRC = Path(webhookd.__file__).parent
TENANT_OWNED = frozenset({"Endpoint", "Event", "Delivery", "Attempt", "DeadLetter"})
QUERY_BUILDERS = frozenset({"select", "update", "delete", "insert", "text", "func"})
SESSION_CALLS = frozenset({"execute", "scalar", "scalars", "stream", "get", "merge"})
SESSION_NAMES = frozenset({"session", "conn", "connection"})


def _may_query(relative: str) -> bool:
    return (
        relative.endswith("/repository.py")
        or relative.startswith("delivery/store/")
        or relative.startswith("migrations/")
        or relative in ("db.py", "models.py")  # the schema itself (index predicates)
        or relative == "migrate.py"  # the schema's revision (alembic_version), no tenant rows
    )


def query_violations(source: str, relative: str) -> list[str]:
    """What in one module breaks the rules (empty: nothing)."""
    tree = ast.parse(source)
    found: list[str] = []
    if not _may_query(relative):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                names = {alias.name for alias in node.names} & QUERY_BUILDERS
                if names:
                    found.append(f"{relative}:{node.lineno} builds queries ({', '.join(names)})")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SESSION_CALLS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in SESSION_NAMES
            ):
                found.append(
                    f"{relative}:{node.lineno} queries ({node.func.value.id}.{node.func.attr})"
                )
    if relative.endswith("/repository.py"):
        found += _unscoped_functions(tree, relative)
    return found


def _unscoped_functions(tree: ast.Module, relative: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        starts_query = any(
            isinstance(n, ast.Call)
            and (
                (isinstance(n.func, ast.Name) and n.func.id in QUERY_BUILDERS)
                or (isinstance(n.func, ast.Attribute) and n.func.attr in SESSION_CALLS)
            )
            for n in ast.walk(node)
        )
        if not starts_query or not names & TENANT_OWNED:
            continue
        marked = any(
            isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "cross_tenant"
            for d in node.decorator_list
        )
        arguments = node.args.args + node.args.kwonlyargs
        takes_tenant = any(a.arg == "tenant_id" for a in arguments) and "tenant_id" in names
        if not (marked or takes_tenant):
            found.append(
                f"{relative}:{node.lineno} {node.name}() queries tenant-owned rows without "
                "a tenant_id (scope it, or mark it @cross_tenant('why'))"
            )
    return found


def _modules() -> list[tuple[str, str]]:
    return [
        (path.relative_to(SRC).as_posix(), path.read_text()) for path in sorted(SRC.rglob("*.py"))
    ]


def test_every_query_of_tenant_owned_rows_is_scoped() -> None:
    violations = [v for relative, source in _modules() for v in query_violations(source, relative)]
    assert violations == []


def test_the_repositories_and_the_store_are_checked() -> None:
    checked = {relative for relative, _ in _modules() if _may_query(relative)}
    assert {"event/repository.py", "endpoint/repository.py", "delivery/repository.py"} <= checked
    assert "delivery/store/common.py" in checked


@pytest.mark.parametrize(
    ("relative", "source", "complaint"),
    [
        (
            "endpoint/repository.py",
            "async def every(session):\n    return await session.scalars(select(Endpoint))\n",
            "every() queries tenant-owned rows without a tenant_id",
        ),
        (
            "event/repository.py",  # takes the tenant but never uses it
            "async def get(session, *, tenant_id, event_id):\n"
            "    return await session.scalar(select(Event).where(Event.event_id == event_id))\n",
            "get() queries tenant-owned rows without a tenant_id",
        ),
        (
            "endpoint/service.py",
            "from sqlalchemy import select\n",
            "builds queries (select)",
        ),
        (
            "tenant/routes.py",
            "async def f(session):\n    return await session.get(Tenant, 1)\n",
            "queries (session.get)",
        ),
    ],
)
def test_the_check_catches_an_unscoped_query(relative: str, source: str, complaint: str) -> None:
    (violation,) = query_violations(source, relative)
    assert complaint in violation


@pytest.mark.parametrize(
    "source",
    [
        "async def get(session, *, tenant_id, endpoint_id):\n"
        "    query = select(Endpoint).where(Endpoint.tenant_id == tenant_id)\n"
        "    return await session.scalar(query.where(Endpoint.id == endpoint_id))\n",
        "@cross_tenant('a gauge')\nasync def count(session):\n"
        "    return await session.scalar(select(func.count()).select_from(Delivery))\n",
    ],
)
def test_scoped_and_marked_queries_pass(source: str) -> None:
    assert query_violations(source, "delivery/repository.py") == []
