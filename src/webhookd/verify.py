"""Verify webhookd deliveries on the receiving side.

    from webhookd.verify import verify, WebhookVerificationError

    try:
        verify(raw_body, request.headers, secret="whsec_...")
    except WebhookVerificationError as exc:
        return 400, str(exc)

Checks the Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) when present, with a timestamp tolerance against replays, else the
``X-Webhook-Signature: sha256=<hex>`` header. Every failure, malformed headers included,
raises :class:`WebhookVerificationError`.
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
    """Check ``X-Webhook-Signature`` (HMAC-SHA256 of the body, keyed with the whole secret)."""
    if not signature:
        raise WebhookVerificationError("missing X-Webhook-Signature header")
    if not hmac.compare_digest(x_webhook_signature(secret, body).encode(), signature.encode()):
        raise WebhookVerificationError("X-Webhook-Signature does not match")


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
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookVerificationError("malformed webhook-timestamp")
    sent = int(timestamp)
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
) -> None:
    """Verify a delivery with whichever scheme its headers carry (Standard Webhooks first)."""
    if _header(headers, "webhook-signature") is not None:
        verify_standard(body, headers, secret, tolerance=tolerance)
    else:
        verify_x_webhook_signature(body, _header(headers, "X-Webhook-Signature"), secret)
