"""Apply the Alembic migrations (``webhookd migrate``, also run by ``webhookd serve``)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from webhookd.config import Settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", "webhookd:migrations")
    config.attributes["database_url"] = settings.database_url
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings), revision)
