"""An endpoint's custom headers: stored encrypted (they may carry credentials), shown
redacted where their name looks secret, sent before webhookd's own headers."""

from __future__ import annotations

from collections.abc import Callable

import orjson

REDACTED = "[redacted]"
_SECRET_WORDS = ("authorization", "token", "secret", "key", "cookie")


def looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def encode_headers(headers: dict[str, str] | None, encrypt: Callable[[str], str]) -> str | None:
    if not headers:
        return None
    return encrypt(orjson.dumps(headers).decode())


def decode_headers(stored: str | None, decrypt: Callable[[str], str]) -> dict[str, str] | None:
    if not stored:
        return None
    headers: dict[str, str] = orjson.loads(decrypt(stored))
    return headers


def redact(headers: dict[str, str] | None) -> dict[str, str] | None:
    """The headers as the API shows them: secret-looking values replaced by REDACTED."""
    if headers is None:
        return None
    return {k: REDACTED if looks_secret(k) else v for k, v in headers.items()}
