"""Tests for webhookd.delivery.signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhookd.delivery.signing import (
    generate_secret,
    signature_headers,
    standard_signature,
    x_webhook_signature,
)

# Vector published by Standard Webhooks; expected values cross-checked with openssl.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET2 = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes(range(32))
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
V1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
V1_SECRET2 = "v1,O4Gjv1HqPqsMrjmczoggs/sWA8gZD0VyHG+fLh4+ktI="
SEED = "sha256=80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c"
SEED_SECRET2 = "sha256=4685c9d16f64a759d47846eae0e4f6c75bedef25470e9a0e099c5a56f2f5571f"


def verify_signature(payload: str, signature: str, secret_key: str) -> bool:
    """The receiver function from the brief, verbatim."""
    expected = hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


@pytest.mark.parametrize(
    ("secret", "v1", "seed"),
    [(SECRET, V1, SEED), (SECRET2, V1_SECRET2, SEED_SECRET2)],
)
def test_fixed_vectors(secret: str, v1: str, seed: str) -> None:
    assert standard_signature(secret, MSG_ID, TIMESTAMP, BODY) == v1
    assert x_webhook_signature(secret, BODY) == seed
    assert signature_headers(secret=secret, msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY) == {
        "X-Webhook-Signature": seed,
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": v1,
    }


def test_fixed_vector_matches_direct_hmac() -> None:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY, hashlib.sha256).digest()
    assert V1 == "v1," + base64.b64encode(mac).decode()
    assert SEED == "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


def test_multi_secret_fixed_vector() -> None:
    headers = signature_headers(
        secret=[SECRET, SECRET2], msg_id=MSG_ID, timestamp=TIMESTAMP, body=BODY
    )
    assert headers["X-Webhook-Signature"] == SEED
    assert headers["webhook-signature"] == f"{V1} {V1_SECRET2}"


@pytest.mark.parametrize("secret", [SECRET, SECRET2, "generated"])
def test_standardwebhooks_library_verifies(secret: str) -> None:
    secret = generate_secret() if secret == "generated" else secret
    body = json.dumps({"type": "invoice.paid", "data": {"id": "inv_1", "note": "é"}}).encode()
    headers = signature_headers(
        secret=secret, msg_id="msg_1", timestamp=int(time.time()), body=body
    )
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


@pytest.mark.parametrize("secret", [SECRET, SECRET2, "generated"])
def test_brief_receiver_verifies_x_webhook_signature(secret: str) -> None:
    secret = generate_secret() if secret == "generated" else secret
    payload = '{"event": "ping", "n": 1}'
    sig = signature_headers(secret=secret, msg_id="m", timestamp=1, body=payload.encode())[
        "X-Webhook-Signature"
    ]
    assert verify_signature(payload, sig, secret)
    assert not verify_signature(payload + " ", sig, secret)
    assert not verify_signature(payload, sig, generate_secret())


def test_multi_secret_headers_verify_with_either_secret() -> None:
    old, new, other = generate_secret(), generate_secret(), generate_secret()
    body = b'{"rotating": true}'
    headers = signature_headers(
        secret=(new, old), msg_id="msg_rot", timestamp=int(time.time()), body=body
    )
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    assert verify_signature(body.decode(), headers["X-Webhook-Signature"], new)
    assert set(headers) == {
        "X-Webhook-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }


def test_empty_secret_sequence_rejected() -> None:
    with pytest.raises(ValueError):
        signature_headers(secret=[], msg_id="m", timestamp=1, body=b"")


def test_generate_secret_format() -> None:
    secrets_ = {generate_secret() for _ in range(50)}
    assert len(secrets_) == 50
    for secret in secrets_:
        assert secret.startswith("whsec_")
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        assert len(raw) == 32
        assert len(secret) == len("whsec_") + 44 and secret.endswith("=")
