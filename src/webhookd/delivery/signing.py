"""Webhook payload signing.

Every delivery carries two independent signatures over the exact body bytes:

* ``X-Webhook-Signature: sha256=<hex>`` — a plain HMAC-SHA256 keyed with the
  *whole* secret string (``whsec_...``) as UTF-8, for receivers that verify with
  ``hmac.new(secret.encode(), body, sha256).hexdigest()``.
* ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` — the
  `Standard Webhooks <https://www.standardwebhooks.com/>`_ scheme: the key is the
  base64-decoded part after ``whsec_`` and the signed content is
  ``"{id}.{timestamp}." + body``. During secret rotation several space-separated
  ``v1,<base64>`` signatures may be sent; receivers accept any that matches.
* ``svix-id`` / ``svix-timestamp`` / ``svix-signature`` — the same three values again under
  Svix's names, for the tenants whose deliveries are in Svix's format (the Svix API).

All functions are pure apart from :func:`generate_secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
SECRET_BYTES = 32


def generate_secret() -> str:
    """Return a new Standard Webhooks secret: ``whsec_`` + padded base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def x_webhook_signature(secret: str, body: bytes) -> str:
    """Return ``"sha256=" + hex(HMAC-SHA256(secret as UTF-8, body))``.

    The key is the complete secret string, prefix included, so a receiver can verify
    with ``hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()``.
    """
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _standard_key(secret: str) -> bytes:
    """Decode the HMAC key of a ``whsec_`` secret; raise ValueError if it is not valid base64."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the Standard Webhooks signature ``"v1," + base64(HMAC-SHA256)``.

    The key is the base64-decoded part of ``secret`` after ``whsec_``; the signed
    content is ``f"{msg_id}.{timestamp}.".encode() + body``.
    """
    content = f"{msg_id}.{timestamp}.".encode() + body
    mac = hmac.new(_standard_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_headers(
    *, secret: str | Sequence[str], msg_id: str, timestamp: int, body: bytes, svix: bool = False
) -> dict[str, str]:
    """Build the signature headers for one delivery attempt.

    ``secret`` is a single secret or, during rotation, a non-empty sequence of secrets
    (newest first). The first secret produces ``X-Webhook-Signature``; every secret
    contributes one ``v1,`` entry to the space-separated ``webhook-signature``. ``svix``:
    the ``webhook-*`` values are also sent as ``svix-*``.
    """
    secret_list = [secret] if isinstance(secret, str) else list(secret)
    if not secret_list:
        raise ValueError("at least one secret is required")
    standard = {
        "id": msg_id,
        "timestamp": str(timestamp),
        "signature": " ".join(standard_signature(s, msg_id, timestamp, body) for s in secret_list),
    }
    headers = {"X-Webhook-Signature": x_webhook_signature(secret_list[0], body)}
    for scheme in ("webhook", "svix") if svix else ("webhook",):
        headers.update({f"{scheme}-{name}": value for name, value in standard.items()})
    return headers
