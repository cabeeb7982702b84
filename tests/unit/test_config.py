"""Settings: URL mapping to async drivers, the seed's variable names as aliases, the admin key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from webhookd.config import Settings, async_database_url
from webhookd.security import resolve_admin_key


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///./webhookd.db", "sqlite+aiosqlite:///./webhookd.db"),
        ("sqlite:////abs/path.db", "sqlite+aiosqlite:////abs/path.db"),
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_async_database_url(given: str, expected: str) -> None:
    assert async_database_url(given) == expected


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEBHOOKD_DATABASE_URL", "DATABASE_URL", "WEBHOOKD_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./webhookd.db"
    assert settings.allow_private_targets is False
    assert settings.max_attempts == 7
    assert (settings.retry_base_delay, settings.retry_max_delay) == (1.0, 32.0)
    assert (settings.connect_timeout, settings.request_timeout) == (5.0, 10.0)
    assert settings.max_payload_bytes == 256 * 1024


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ("DATABASE_URL", "database_url", "postgresql+asyncpg://a@b/c"),
        ("WEBHOOKD_DATABASE_URL", "database_url", "postgresql+asyncpg://a@b/c"),
        ("REDIS_URL", "redis_url", "redis://localhost:6379/0"),
        ("WEBHOOKD_REDIS_URL", "redis_url", "redis://localhost:6379/0"),
        ("CELERY_BROKER_URL", "broker_url", "amqp://guest:guest@localhost:5672//"),
        ("WEBHOOKD_BROKER_URL", "broker_url", "amqp://guest:guest@localhost:5672//"),
    ],
)
def test_seed_aliases(monkeypatch: pytest.MonkeyPatch, env: str, field: str, value: str) -> None:
    raw = value.replace("postgresql+asyncpg", "postgresql")
    monkeypatch.setenv(env, raw)
    assert getattr(Settings(), field) == value


def test_prefixed_name_wins_over_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///alias.db")
    monkeypatch.setenv("WEBHOOKD_DATABASE_URL", "sqlite:///prefixed.db")
    assert Settings().database_url.endswith("prefixed.db")


def test_admin_key_generated_once_next_to_the_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", admin_key=None)
    key, source = resolve_admin_key(settings)
    path = tmp_path / "w.db.admin-key"
    assert source == str(path)
    assert key.startswith("whadm_") and len(key) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_admin_key(settings) == (key, source)  # stable across restarts


def test_admin_key_from_settings(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", admin_key="whadm_given")
    assert resolve_admin_key(settings) == ("whadm_given", "WEBHOOKD_ADMIN_KEY")
    assert not (tmp_path / "w.db.admin-key").exists()


def test_production_requires_an_admin_key(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'w.db'}", admin_key=None, environment="production"
    )
    with pytest.raises(SystemExit, match="WEBHOOKD_ADMIN_KEY"):
        resolve_admin_key(settings)


def test_server_secrets_generated_once_in_development(tmp_path: Path) -> None:
    from webhookd.security import resolve_server_secrets

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}")
    first = resolve_server_secrets(settings)
    path = tmp_path / "w.db.secrets"
    assert first.source == str(path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    again = resolve_server_secrets(settings)
    assert again.pepper == first.pepper
    assert again.box.decrypt(first.box.encrypt("whsec_x")) == "whsec_x"


def _lose_the_race(monkeypatch: pytest.MonkeyPatch, path: Path, winner: str) -> None:
    """Another process stores ``winner`` at ``path`` just after this one found no file."""
    from webhookd import security

    def read_then_lose(target: Path) -> str | None:
        assert not target.exists()
        target.write_text(winner)
        return None  # what this process saw

    monkeypatch.setattr(security, "_read_private", read_then_lose)


def test_server_secrets_of_a_process_that_lost_the_race_are_the_winners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API and its workers started together on a fresh database: the file one of them
    stored between another's look and its write is the one both use (before: the second
    overwrote it, and the two hashed API keys with different peppers: 401s)."""
    from cryptography.fernet import Fernet

    from webhookd.security import resolve_server_secrets

    path = tmp_path / "w.db.secrets"
    key = Fernet.generate_key().decode()
    _lose_the_race(monkeypatch, path, f'{{"encryption_key": "{key}", "api_key_pepper": "p1"}}')
    got = resolve_server_secrets(Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}"))
    assert got.pepper == "p1"
    assert Fernet(key.encode()).decrypt(got.box.encrypt("x").encode()) == b"x"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_admin_key_of_a_process_that_lost_the_race_is_the_winners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "w.db.admin-key"
    _lose_the_race(monkeypatch, path, "whadm_first\n")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}", admin_key=None)
    assert resolve_admin_key(settings) == ("whadm_first", str(path))


def _pepper_of(database: str) -> str:
    from webhookd.security import resolve_server_secrets

    return resolve_server_secrets(Settings(database_url=database)).pepper


def test_processes_started_together_share_one_set_of_secrets(tmp_path: Path) -> None:
    import multiprocessing

    database = f"sqlite:///{tmp_path / 'w.db'}"
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        peppers = pool.map(_pepper_of, [database] * 12)
    assert len(set(peppers)) == 1, peppers
    assert _pepper_of(database) == peppers[0]


def test_an_empty_secrets_file_is_replaced(tmp_path: Path) -> None:
    from webhookd.security import resolve_server_secrets

    (tmp_path / "w.db.secrets").write_text("{}")
    first = resolve_server_secrets(Settings(database_url=f"sqlite:///{tmp_path / 'w.db'}"))
    assert first.pepper
    assert _pepper_of(f"sqlite:///{tmp_path / 'w.db'}") == first.pepper


def test_production_requires_server_secrets(tmp_path: Path) -> None:
    from webhookd.security import resolve_server_secrets

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'w.db'}", admin_key="k", environment="production"
    )
    with pytest.raises(SystemExit, match="WEBHOOKD_ENCRYPTION_KEY"):
        resolve_server_secrets(settings)
    assert not (tmp_path / "w.db.secrets").exists()


def test_a_malformed_encryption_key_is_a_clear_error() -> None:
    from webhookd.security import SecretBox

    with pytest.raises(SystemExit, match="Fernet"):
        SecretBox("not-a-key")


def test_old_encryption_keys_still_decrypt_after_key_rotation() -> None:
    from cryptography.fernet import Fernet

    from webhookd.security import SecretBox

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox(old).encrypt("whsec_y")
    assert SecretBox(f"{new},{old}").decrypt(token) == "whsec_y"


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///./webhookd.db", Path("webhookd.db")),
        ("sqlite:////var/lib/webhookd/w.db?mode=rwc", Path("/var/lib/webhookd/w.db")),
        ("sqlite://", None),  # in memory
        ("sqlite:///:memory:", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_sqlite_path(url: str, path: Path | None) -> None:
    assert Settings(database_url=url).sqlite_path() == path
