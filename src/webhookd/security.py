"""API keys and the admin key.

Tenant API keys are random, prefixed ``whk_`` (recognisable when leaked) and stored only as a
SHA-256 hash: with 256 bits of entropy a fast hash is enough, and lookups by hash take the same
path whatever the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from webhookd.config import Settings

API_KEY_PREFIX = "whk_"
ADMIN_KEY_FILE_SUFFIX = ".admin-key"


def generate_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def display_prefix(api_key: str) -> str:
    """The part of a key that may be shown later to identify it (``whk_AbCd``)."""
    return api_key[: len(API_KEY_PREFIX) + 4]


def keys_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def admin_key_path(settings: Settings) -> Path:
    db_path = settings.sqlite_path()
    directory = db_path.parent if db_path else Path.cwd()
    stem = db_path.name if db_path else "webhookd"
    return directory / (stem + ADMIN_KEY_FILE_SUFFIX)


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
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key, str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "whadm_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key, str(path)
