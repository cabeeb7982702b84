"""What a receiver gets: the exact body, the headers, and signatures it can verify."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.fixtures.delivery import wait_deliveries, wait_final
from webhookd import __version__


def verify_signature(payload, signature, secret_key):
    expected = hmac.new(secret_key.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


def standard_ok(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_body_is_exactly_the_event_envelope(tenant, receiver) -> None:
    tenant.add_endpoint(receiver.url("/sig/body"))
    payload = {"user_id": "u1", "nested": {"list": [1, 2.5, None, True], "s": "x"}}
    response = tenant.publish("user.created", event_id="evt_sig_body", **payload)
    assert response.status_code == 202, response.text
    published = response.json()

    (request,) = receiver.wait_for(1, "/sig/body")
    body = json.loads(request.body)
    assert set(body) == {"event_id", "event_type", "payload", "created_at"}
    assert body["event_id"] == "evt_sig_body"
    assert body["event_type"] == "user.created"
    assert body["payload"] == payload
    assert body["created_at"] == published["created_at"]
    assert parse_time(body["created_at"]) == parse_time(published["created_at"])
    assert parse_time(body["created_at"]).utcoffset() == dt.timedelta(0)


def test_headers(tenant, receiver) -> None:
    tenant.add_endpoint(receiver.url("/sig/headers"))
    response = tenant.publish("order.completed", event_id="evt_sig_headers")
    assert response.status_code == 202, response.text

    (request,) = receiver.wait_for(1, "/sig/headers")
    assert request.header("Content-Type") == "application/json"
    assert request.header("User-Agent") == f"webhookd/{__version__}"
    assert request.header("X-Webhook-Event-Type") == "order.completed"
    assert request.header("X-Webhook-Attempt") == "1"
    assert request.header("X-Webhook-Signature").startswith("sha256=")
    assert request.header("webhook-id")
    assert request.header("webhook-signature").startswith("v1,")
    assert abs(int(request.header("webhook-timestamp")) - time.time()) < 10


def test_each_delivery_has_its_own_webhook_id(tenant, receiver) -> None:
    tenant.add_endpoint(receiver.url("/sig/id-a"))
    tenant.add_endpoint(receiver.url("/sig/id-b"))
    response = tenant.publish("user.created", event_id="evt_sig_ids")
    assert response.status_code == 202, response.text
    assert len(response.json()["deliveries"]) == 2

    (a,) = receiver.wait_for(1, "/sig/id-a")
    (b,) = receiver.wait_for(1, "/sig/id-b")
    assert a.body == b.body
    assert a.header("webhook-id") != b.header("webhook-id")


def test_both_signatures_verify(tenant, receiver) -> None:
    tenant.add_endpoint(receiver.url("/sig/verify"))
    assert tenant.publish("user.created", event_id="evt_sig_ok", a=1).status_code == 202

    (request,) = receiver.wait_for(1, "/sig/verify")
    signature = request.header("X-Webhook-Signature")
    assert verify_signature(request.body.decode("utf-8"), signature, tenant.secret_key)
    verified = Webhook(tenant.secret_key).verify(request.body, request.headers)
    assert verified == json.loads(request.body)


def test_tampered_body_or_wrong_secret_fails_both(tenant, other_tenant, receiver) -> None:
    tenant.add_endpoint(receiver.url("/sig/tamper"))
    assert tenant.publish("user.created", event_id="evt_sig_tamper", amount=10).status_code == 202

    (request,) = receiver.wait_for(1, "/sig/tamper")
    body = request.body
    signature = request.header("X-Webhook-Signature")
    tampered = body.replace(b'"amount":10', b'"amount":99')
    assert tampered != body

    # Sanity: the untouched delivery verifies, so the failures below are meaningful.
    assert verify_signature(body.decode(), signature, tenant.secret_key)
    assert standard_ok(tenant.secret_key, body, request.headers)

    assert not verify_signature(tampered.decode(), signature, tenant.secret_key)
    assert not standard_ok(tenant.secret_key, tampered, request.headers)

    assert other_tenant.secret_key != tenant.secret_key
    assert not verify_signature(body.decode(), signature, other_tenant.secret_key)
    assert not standard_ok(other_tenant.secret_key, body, request.headers)

    with pytest.raises(WebhookVerificationError):
        Webhook(other_tenant.secret_key).verify(body, request.headers)


def test_retries_keep_webhook_id_and_resign_each_attempt(tenant, receiver) -> None:
    # Each answer takes 0.6 s, so three attempts span more than one second and the
    # per-attempt webhook-timestamp must move on.
    receiver.plan("/sig/retry", 500, 500, default=200, delay=0.6)
    tenant.add_endpoint(receiver.url("/sig/retry"))
    response = tenant.publish("user.created", event_id="evt_sig_retry", k="v")
    assert response.status_code == 202, response.text
    delivery_id = response.json()["deliveries"][0]["id"]

    requests = receiver.wait_for(3, "/sig/retry", timeout=15)
    delivery = wait_final(tenant.client, "evt_sig_retry")
    assert delivery["id"] == delivery_id
    assert delivery["status"] == "succeeded"
    assert len(receiver.received("/sig/retry")) == 3

    now_wall, now_mono = time.time(), time.monotonic()
    assert [r.header("X-Webhook-Attempt") for r in requests] == ["1", "2", "3"]
    assert len({r.header("webhook-id") for r in requests}) == 1
    assert all(r.body == requests[0].body for r in requests)
    stamps = [int(r.header("webhook-timestamp")) for r in requests]
    for request, stamp in zip(requests, stamps, strict=True):
        arrived = now_wall - (now_mono - request.at)
        assert stamp <= arrived + 0.05  # stamped before sending
        assert arrived - stamp < 1.5  # ... and at this attempt, not at publish time
        assert verify_signature(
            request.body.decode(), request.header("X-Webhook-Signature"), tenant.secret_key
        )
        assert standard_ok(tenant.secret_key, request.body, request.headers)
    assert stamps == sorted(stamps)
    assert stamps[2] > stamps[0]
    assert len({r.header("webhook-signature") for r in requests}) == len(set(stamps))


def test_unicode_payload_survives_and_verifies(tenant, receiver) -> None:
    tenant.add_endpoint(receiver.url("/sig/unicode"))
    payload = {
        "emoji": "🎉🚀",
        "non_bmp": "𝄞 𠜎 🀄",
        "accents": "Grüße, façade, Ωmega",
        "cjk": "世界",
        "separators": "\u2028\u2029",
        "ключ": "значение",
    }
    response = tenant.client.post(
        "/api/v1/events",
        json={"event_id": "evt_sig_unicode", "event_type": "user.created", "payload": payload},
    )
    assert response.status_code == 202, response.text

    (request,) = receiver.wait_for(1, "/sig/unicode")
    text = request.body.decode("utf-8")
    assert json.loads(text)["payload"] == payload
    assert verify_signature(text, request.header("X-Webhook-Signature"), tenant.secret_key)
    assert Webhook(tenant.secret_key).verify(request.body, request.headers)["payload"] == payload
    stored = tenant.client.get("/api/v1/events/evt_sig_unicode")
    assert stored.status_code == 200
    assert stored.json()["payload"] == payload
    wait_deliveries(tenant.client, "evt_sig_unicode")
