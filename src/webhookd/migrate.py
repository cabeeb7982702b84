"""Apply the Alembic migrations (``webhookd migrate``, also run by ``webhookd serve``).

A database already at ``HEAD`` is left alone without loading Alembic (~10 MB of modules the
server would otherwise keep for its whole life): one ``SELECT`` of ``alembic_version``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sqlalchemy import text

from webhookd.config import Settings
from webhookd.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in migrations/versions (tests/test_migrations.py checks it against
# Alembic's own head: a new migration must update it).
HEAD = "0010"


def alembic_config(settings: Settings) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "webhookd:migrations")
    config.attributes["database_url"] = settings.database_url
    return config


def current_revision(settings: Settings) -> str | None:
    """The revision the database is at; None when it has none (new, or not ours)."""

    async def read() -> str | None:
        db = Database(settings)
        try:
            async with db.engine.connect() as connection:
                rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
                versions = list(rows.scalars())
        except Exception:  # noqa: BLE001  (no table yet: Alembic creates it)
            return None
        finally:
            await db.dispose()
        return versions[0] if len(versions) == 1 else None

    return asyncio.run(read())


def upgrade(settings: Settings, revision: str = "head") -> None:
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if revision == "head" and current_revision(settings) == HEAD:
        return
    from alembic import command

    command.upgrade(alembic_config(settings), revision)
