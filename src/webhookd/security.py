"""API keys, the admin key, and the server secrets that protect tenant secrets at rest.

- Tenant API keys are random, prefixed ``whk_`` (recognisable when leaked) and stored only as
  HMAC-SHA256(pepper, key): with 256 bits of entropy a fast keyed hash is enough, and a
  database dump without the pepper cannot even confirm a guessed key.
- Signing secrets are stored encrypted with Fernet (AES-128-CBC + HMAC) under
  ``WEBHOOKD_ENCRYPTION_KEY``; a dump alone cannot sign webhooks.
- In development, missing server secrets are generated once and kept (mode 0600) next to the
  database; production refuses to start without them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.engine import make_url

from webhookd.config import Settings

API_KEY_PREFIX = "whk_"
ADMIN_KEY_FILE_SUFFIX = ".admin-key"
SECRETS_FILE_SUFFIX = ".secrets"


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str, pepper: str) -> str:
    return hmac.new(pepper.encode("utf-8"), api_key.encode("utf-8"), hashlib.sha256).hexdigest()


def display_prefix(api_key: str) -> str:
    """The part of a key that may be shown later to identify it (``whk_AbCd``)."""
    return api_key[: len(API_KEY_PREFIX) + 4]


def keys_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _beside_database(settings: Settings, suffix: str) -> Path:
    """Where development keeps a generated secret: beside a SQLite database file; for
    PostgreSQL (or an in-memory SQLite) in ``WEBHOOKD_STATE_DIR``
    (``~/.local/state/webhookd``), named after the database, so that every process of one
    deployment finds the same file whatever its working directory."""
    db_path = settings.sqlite_path()
    if db_path is not None:
        return db_path.parent / (db_path.name + suffix)
    directory = settings.state_dir.expanduser()
    if settings.is_sqlite:
        return directory / ("memory" + suffix)
    url = make_url(settings.database_url)
    name = f"{url.host or 'localhost'}-{url.port or 5432}-{url.database or 'postgres'}"
    return directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + suffix)


def admin_key_path(settings: Settings) -> Path:
    return _beside_database(settings, ADMIN_KEY_FILE_SUFFIX)


def _read_private(path: Path) -> str | None:
    """What a generated-secret file holds; None if there is none."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _store_private(path: Path, text: str, *, replace: bool = False) -> str:
    """Store ``text`` (mode 0600) at ``path`` unless the file is there already; what the file
    holds afterwards. Processes started together on a fresh database (an API and its workers)
    all get here: the file appears whole and at once (a complete temporary file linked into
    place), the first link wins, and the others read what it stored, so every process uses
    the same secrets. ``replace``: overwrite the unusable file that was read (empty, or
    JSON without the keys; atomically, the last writer wins) — decided from what was read,
    never from whether the file exists now (another process may have just stored it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if replace:
            os.replace(temporary, path)
            return text
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text()
        return text
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def resolve_admin_key(settings: Settings) -> tuple[str, str]:
    """The admin key and where it came from.

    ``WEBHOOKD_ADMIN_KEY`` wins. In development a key is generated once and kept (mode 0600)
    next to the database; production requires the setting.
    """
    if settings.admin_key:
        return settings.admin_key, "WEBHOOKD_ADMIN_KEY"
    if settings.environment == "production":
        raise SystemExit("WEBHOOKD_ADMIN_KEY must be set when WEBHOOKD_ENVIRONMENT=production")
    path = admin_key_path(settings)
    found = _read_private(path)
    key = (found or "").strip()
    if not key:
        fresh = "whadm_" + secrets.token_urlsafe(32) + "\n"
        key = _store_private(path, fresh, replace=found is not None).strip()
    return key, str(path)


class SecretBox:
    """Encrypts tenant signing secrets at rest. Several comma-separated keys may be given:
    the first encrypts, all decrypt (``MultiFernet``), so the key can be rotated."""

    def __init__(self, keys: str) -> None:
        try:
            fernets = [Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()]
        except ValueError as exc:
            raise SystemExit(
                "WEBHOOKD_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
                '(python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())")'
            ) from exc
        if not fernets:
            raise SystemExit("WEBHOOKD_ENCRYPTION_KEY is empty")
        self._fernet = MultiFernet(fernets)
        # Ciphertexts never change meaning, so decrypting the same one again can be skipped.
        self.decrypt_cached = functools.lru_cache(maxsize=4096)(self.decrypt)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")


@dataclass(frozen=True, slots=True)
class ServerSecrets:
    box: SecretBox
    pepper: str
    source: str  # where they came from, for the startup banner


def resolve_server_secrets(settings: Settings) -> ServerSecrets:
    """``WEBHOOKD_ENCRYPTION_KEY`` and ``WEBHOOKD_API_KEY_PEPPER``, or in development values
    generated once into ``<database>.secrets`` (JSON, mode 0600)."""
    if settings.encryption_key and settings.api_key_pepper:
        return ServerSecrets(
            SecretBox(settings.encryption_key), settings.api_key_pepper, "environment"
        )
    if settings.environment == "production":
        raise SystemExit(
            "WEBHOOKD_ENCRYPTION_KEY and WEBHOOKD_API_KEY_PEPPER must be set when "
            "WEBHOOKD_ENVIRONMENT=production"
        )
    path = _beside_database(settings, SECRETS_FILE_SUFFIX)
    found = _read_private(path)
    stored: dict[str, str] = json.loads(found) if found is not None else {}
    if not stored.get("encryption_key") or not stored.get("api_key_pepper"):
        fresh = {
            "encryption_key": Fernet.generate_key().decode(),
            "api_key_pepper": secrets.token_urlsafe(32),
        }
        text = json.dumps(fresh, indent=2) + "\n"
        stored = json.loads(_store_private(path, text, replace=found is not None))
    return ServerSecrets(
        SecretBox(settings.encryption_key or stored["encryption_key"]),
        settings.api_key_pepper or stored["api_key_pepper"],
        str(path),
    )
