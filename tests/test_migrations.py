"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tests.fixtures.db import BACKENDS, TestDatabase
from webhookd.config import Settings
from webhookd.db import Base, create_engine
from webhookd.migrate import HEAD, alembic_config, current_revision, upgrade


def _diff(settings: Settings) -> list[object]:
    async def run() -> list[object]:
        engine = create_engine(settings)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_from_empty_matches_models(tmp_path: Path, backend: str) -> None:
    database = TestDatabase(backend, tmp_path)
    try:
        settings = Settings(database_url=database.url)
        upgrade(settings)
        assert _diff(settings) == []
        command.downgrade(alembic_config(settings), "base")
        upgrade(settings)
        assert _diff(settings) == []
    finally:
        database.drop()


def test_head_is_the_newest_migration(tmp_path: Path) -> None:
    """`upgrade` skips Alembic for a database at HEAD: HEAD must name the newest migration."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}")
    assert ScriptDirectory.from_config(alembic_config(settings)).get_heads() == [HEAD]


def test_a_database_behind_head_is_upgraded(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}")
    assert current_revision(settings) is None
    upgrade(settings)
    assert current_revision(settings) == HEAD
    command.downgrade(alembic_config(settings), "-1")
    assert current_revision(settings) not in (None, HEAD)
    upgrade(settings)
    assert current_revision(settings) == HEAD
    assert _diff(settings) == []


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    settings = Settings(database_url=f"sqlite:///{db}")
    upgrade(settings)
    command.downgrade(alembic_config(settings), "base")
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert tables == {"alembic_version"}
    upgrade(settings)
    assert _diff(settings) == []


def test_claim_indexes_are_partial(tmp_path: Path) -> None:
    """The dispatcher's index and an endpoint's live-delivery index hold only live
    deliveries, so claims and breaker/FIFO lookups stay cheap however long the history."""
    db = tmp_path / "m.db"
    upgrade(Settings(database_url=f"sqlite:///{db}"))
    with sqlite3.connect(db) as conn:
        sql = dict(
            conn.execute(
                "select name, sql from sqlite_master where name in "
                "('ix_deliveries_queue', 'ix_deliveries_open')"
            ).fetchall()
        )
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "explain query plan select id from deliveries where next_attempt_at <= ? "
                "order by queue_key limit 100",
                ("2030-01-01",),
            )
        )
        head = " ".join(
            str(row[-1])
            for row in conn.execute(
                "explain query plan select min(id) from deliveries where endpoint_id = 1 "
                "and status in ('pending', 'delivering', 'retrying')"
            )
        )
    assert "WHERE next_attempt_at IS NOT NULL" in sql["ix_deliveries_queue"]
    assert "WHERE status IN ('pending', 'delivering', 'retrying')" in sql["ix_deliveries_open"]
    assert "ix_deliveries_queue" in plan
    assert "ix_deliveries_open" in head
