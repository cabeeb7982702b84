"""webhookd.verify: the Standard Webhooks scheme by default (replay window), the brief's
X-Webhook-Signature only when asked for, one exception type for every failure."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from standardwebhooks import Webhook

from webhookd.delivery.signing import generate_secret, signature_headers
from webhookd.verify import (
    WebhookVerificationError,
    verify,
    verify_standard,
    verify_x_webhook_signature,
)

SECRET = generate_secret()
BODY = b'{"event_id":"evt_1","event_type":"user.created","payload":{"a":1}}'


def _headers(secret: str | list[str] = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return signature_headers(secret=secret, msg_id="dlv_1", timestamp=ts, body=BODY)


def test_engine_headers_verify_with_both_schemes() -> None:
    headers = _headers()
    verify(BODY, headers, SECRET)
    verify_standard(BODY, headers, SECRET)
    verify_x_webhook_signature(BODY, headers["X-Webhook-Signature"], SECRET)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.upper(): v for k, v in _headers().items()}
    verify(BODY, headers, SECRET)


def test_x_webhook_signature_alone_only_when_asked_for() -> None:
    headers = {"X-Webhook-Signature": _headers()["X-Webhook-Signature"]}
    with pytest.raises(WebhookVerificationError, match="missing webhook-id"):
        verify(BODY, headers, SECRET)
    verify(BODY, headers, SECRET, allow_x_webhook_signature=True)


def test_a_captured_delivery_replayed_with_only_its_hex_header_is_refused() -> None:
    """A day-old delivery: its Standard Webhooks timestamp is stale, and dropping those
    headers to fall back on the timestamp-less X-Webhook-Signature must not help."""
    captured = _headers(timestamp=int(time.time()) - 86_400)
    with pytest.raises(WebhookVerificationError, match="away from now"):
        verify(BODY, captured, SECRET)
    stripped = {"X-Webhook-Signature": captured["X-Webhook-Signature"]}
    with pytest.raises(WebhookVerificationError):
        verify(BODY, stripped, SECRET)


def test_with_standard_headers_present_the_hex_header_is_never_the_fallback() -> None:
    """Opting in to X-Webhook-Signature does not let a stale Standard Webhooks timestamp
    through: the timestamped scheme decides whenever its headers are there."""
    captured = _headers(timestamp=int(time.time()) - 86_400)
    with pytest.raises(WebhookVerificationError, match="away from now"):
        verify(BODY, captured, SECRET, allow_x_webhook_signature=True)


def test_signatures_made_by_the_standardwebhooks_library_verify() -> None:
    now = dt.datetime.now(dt.UTC)
    signature = Webhook(SECRET).sign("msg_1", now, BODY.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    verify(BODY, headers, SECRET)


def test_rotation_either_secret_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    headers = _headers([new, old])
    verify_standard(BODY, headers, new)
    verify_standard(BODY, headers, old)


@pytest.mark.parametrize(
    ("case", "body", "headers", "secret"),
    [
        ("tampered body", BODY + b" ", _headers(), SECRET),
        ("other secret", BODY, _headers(), generate_secret()),
        ("stale timestamp", BODY, _headers(timestamp=int(time.time()) - 3600), SECRET),
        ("future timestamp", BODY, _headers(timestamp=int(time.time()) + 3600), SECRET),
        ("no headers", BODY, {}, SECRET),
        ("malformed timestamp", BODY, {**_headers(), "webhook-timestamp": "12x"}, SECRET),
        ("huge timestamp", BODY, {**_headers(), "webhook-timestamp": "9" * 40}, SECRET),
        ("superscript digit", BODY, {**_headers(), "webhook-timestamp": "\u00b2"}, SECRET),
        ("arabic-indic digits", BODY, {**_headers(), "webhook-timestamp": "\u0661\u0662"}, SECRET),
        ("fullwidth digits", BODY, {**_headers(), "webhook-timestamp": "\uff11\uff12"}, SECRET),
        ("signed timestamp", BODY, {**_headers(), "webhook-timestamp": "+1700000000"}, SECRET),
        ("garbage signature", BODY, {**_headers(), "webhook-signature": "v1,@@@ nonsense"}, SECRET),
        ("empty signature", BODY, {**_headers(), "webhook-signature": ""}, SECRET),
        ("secret not base64", BODY, _headers(), "whsec_!!!not-base64!!!"),
        ("hex header only, wrong", BODY, {"X-Webhook-Signature": "sha256=00"}, SECRET),
    ],
)
@pytest.mark.parametrize("allow_hex", [False, True])
def test_every_failure_is_one_exception_type(case, body, headers, secret, allow_hex) -> None:
    with pytest.raises(WebhookVerificationError):
        verify(body, headers, secret, allow_x_webhook_signature=allow_hex)
