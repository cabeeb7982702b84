"""Issue 13: in development the generated admin key and secrets sit beside a SQLite
database, and in one documented place (WEBHOOKD_STATE_DIR) for PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhookd.config import Settings
from webhookd.security import admin_key_path, resolve_admin_key


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///{tmp}/data/w.db", "{tmp}/data/w.db.admin-key"),
        (
            "postgresql://u:p@db.internal:5433/webhooks",
            "{state}/db.internal-5433-webhooks.admin-key",
        ),
        ("postgresql://u@localhost/other", "{state}/localhost-5432-other.admin-key"),
    ],
)
def test_where_the_admin_key_is_kept(tmp_path: Path, url: str, expected: str) -> None:
    state = tmp_path / "state"
    settings = Settings(database_url=url.format(tmp=tmp_path), state_dir=state)
    assert admin_key_path(settings) == Path(expected.format(tmp=tmp_path, state=state))


def test_the_key_for_postgresql_is_the_same_from_any_directory(tmp_path: Path, monkeypatch) -> None:
    settings = Settings(database_url="postgresql://u@h/db", state_dir=tmp_path / "state")
    monkeypatch.chdir(tmp_path)
    first, _ = resolve_admin_key(settings)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert resolve_admin_key(settings)[0] == first
