"""Verify webhookd deliveries on the receiving side.

    from webhookd.verify import verify, WebhookVerificationError

    try:
        verify(raw_body, request.headers, secret="whsec_...")
    except WebhookVerificationError as exc:
        return 400, str(exc)

Checks the Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``), with a timestamp tolerance against replays. The brief's
``X-Webhook-Signature: sha256=<hex>`` header signs the body alone, with no timestamp, so a
captured delivery verifies forever: it is accepted only when the caller asks for it
(``allow_x_webhook_signature=True``) and the Standard Webhooks headers are absent. Every
failure, malformed headers included, raises :class:`WebhookVerificationError`.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from webhookd.delivery.signing import standard_signature, x_webhook_signature

DEFAULT_TOLERANCE = 300  # seconds


class WebhookVerificationError(Exception):
    """The webhook is not authentic, is malformed, or is too old."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def verify_x_webhook_signature(body: bytes, signature: str | None, secret: str) -> None:
    """Check ``X-Webhook-Signature`` (HMAC-SHA256 of the body, keyed with the whole secret).

    It carries no timestamp: a captured delivery replayed later still verifies. Prefer
    :func:`verify_standard`."""
    if not signature:
        raise WebhookVerificationError("missing X-Webhook-Signature header")
    if not hmac.compare_digest(x_webhook_signature(secret, body).encode(), signature.encode()):
        raise WebhookVerificationError("X-Webhook-Signature does not match")


def _timestamp(value: str) -> int:
    # ASCII digits only: str.isdigit() also accepts '²' and other digits int() refuses.
    if not (value.isascii() and value.isdigit()) or len(value) > 12:
        raise WebhookVerificationError("malformed webhook-timestamp")
    return int(value)


def verify_standard(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check the Standard Webhooks headers; any one matching ``v1,`` signature is enough."""
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    sent = _timestamp(timestamp)
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance}s away from now")
    try:
        expected = standard_signature(secret, msg_id, sent, body).encode()
    except ValueError as exc:
        raise WebhookVerificationError("the secret is not a valid whsec_ secret") from exc
    for candidate in signatures.split():
        if hmac.compare_digest(expected, candidate.encode()):
            return
    raise WebhookVerificationError("no webhook-signature matches")


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    allow_x_webhook_signature: bool = False,
) -> None:
    """Verify a delivery by its Standard Webhooks headers (timestamped: replays older than
    ``tolerance`` seconds are refused).

    With ``allow_x_webhook_signature=True``, a request without those headers may instead
    carry the brief's ``X-Webhook-Signature``; that header has no timestamp, so this mode
    cannot refuse a replayed delivery.
    """
    has_standard = any(
        _header(headers, name) is not None
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if has_standard or not allow_x_webhook_signature:
        verify_standard(body, headers, secret, tolerance=tolerance)
    else:
        verify_x_webhook_signature(body, _header(headers, "X-Webhook-Signature"), secret)
