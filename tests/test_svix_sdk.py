"""Issue 17: the official Svix Python SDK (pinned `svix` from PyPI, unmodified) drives
webhookd through every call the Svix API serves, on SQLite and PostgreSQL, and a real
receiver accepts each delivery only if the SDK's own `Webhook(secret).verify` does."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from svix.api import (
    ApplicationIn,
    ApplicationPatch,
    AppPortalAccessIn,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointPatch,
    EndpointSecretRotateIn,
    EndpointUpsertIn,
    EventTypeIn,
    EventTypePatch,
    EventTypeUpsertIn,
    MessageIn,
    RecoverIn,
    Svix,
    SvixOptions,
)
from svix.api.application import ApplicationCreateOptions, ApplicationListOptions
from svix.api.errors.http_error import HttpError
from svix.api.errors.http_validation_error import HTTPValidationError
from svix.api.event_type import EventTypeDeleteOptions, EventTypeListOptions
from svix.api.message import MessageCreateOptions
from svix.api.message_attempt import (
    MessageAttemptListByEndpointOptions,
    MessageAttemptListByMsgOptions,
)
from svix.models import Ordering
from svix.webhooks import Webhook, WebhookVerificationError

from tests.conftest import create_tenant
from tests.fixtures.delivery import wait_until
from tests.fixtures.receiver import Received, Receiver
from tests.fixtures.server import ADMIN_KEY, LiveServer
from tests.fixtures.services import services_required

_n = itertools.count(1)
JS_DIR = Path(__file__).parent / "svix_js"  # `npm ci` there: .ci/run, make's install


def svix(server: LiveServer, token: str = ADMIN_KEY) -> Svix:
    """The SDK as a Svix user builds it: only the server URL is webhookd's. No retries, so
    that a 5xx fails the test instead of being retried away."""
    return Svix(token, SvixOptions(server_url=server.url, retry_schedule=[]))


@dataclass
class VerifyingReceiver:
    """Answers 200 only to deliveries that `Webhook(secret).verify` accepts with one of the
    secrets the path's endpoint may sign with; 400 otherwise (and remembers why)."""

    receiver: Receiver
    secrets: dict[str, list[str]] = field(default_factory=dict)
    verified: dict[str, list[dict]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def path(self, secret: str) -> str:
        path = f"/svix/{next(_n)}"
        self.secrets[path] = [secret]
        self.verified[path] = []
        self.receiver.plan_with(path, self._answer)
        return path

    def _answer(self, request: Received) -> int:
        """Svix's headers (`verify` reads svix-* before webhook-*) must be there too."""
        for secret in self.secrets[request.path] if request.header("svix-signature") else ():
            try:
                Webhook(secret).verify(request.body, request.headers)
            except (WebhookVerificationError, ValueError):
                continue
            with self.lock:
                self.verified[request.path].append(json.loads(request.body))
            return 200
        self.refused.append(request.path)
        return 400

    def wait(self, path: str, count: int) -> list[dict]:
        wait_until(lambda: len(self.verified[path]) >= count, what=f"{count} verified on {path}")
        return self.verified[path]


@pytest.fixture(scope="module")
def verifier(receiver: Receiver) -> Iterator[VerifyingReceiver]:
    verifying = VerifyingReceiver(receiver)
    yield verifying
    assert not verifying.refused, f"deliveries refused by Webhook.verify: {verifying.refused}"


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Svix:
    return svix(server)


def new_app(client: Svix, **fields: object) -> str:
    uid = f"app-{next(_n)}"
    return client.application.create(ApplicationIn(name=f"App {uid}", uid=uid, **fields)).id


def test_health(client: Svix) -> None:
    client.health.get()


def test_applications(client: Svix) -> None:
    uid = f"cust-{next(_n)}"
    app = client.application.create(ApplicationIn(name="Acme", uid=uid, metadata={"plan": "pro"}))
    assert app.id.startswith("tnt_") and app.uid == uid and app.name == "Acme"
    assert app.metadata == {"plan": "pro"}
    assert client.application.get(uid).id == app.id  # by uid
    again = client.application.get_or_create(ApplicationIn(name="other", uid=uid))
    assert again.id == app.id and again.name == "Acme"
    patched = client.application.patch(app.id, ApplicationPatch(name="Acme 2"))
    assert (patched.name, patched.metadata) == ("Acme 2", {"plan": "pro"})
    patched = client.application.patch(app.id, ApplicationPatch(metadata={"plan": "free"}))
    assert patched.metadata == {"plan": "free"}
    assert client.application.upsert(uid, ApplicationIn(name="Acme 3", uid=uid)).name == "Acme 3"
    created = client.application.upsert(f"new-{uid}", ApplicationIn(name="Upserted"))
    assert created.uid == f"new-{uid}"
    seen: list[str] = []
    iterator = None
    while True:  # every page, two at a time
        page = client.application.list(ApplicationListOptions(limit=2, iterator=iterator))
        seen += [a.id for a in page.data]
        if page.done:
            break
        iterator = page.iterator
    assert app.id in seen and created.id in seen and len(seen) == len(set(seen))
    newest = client.application.list(ApplicationListOptions(limit=1, order=Ordering.DESCENDING))
    assert newest.data[0].id == created.id
    client.application.delete(created.id)
    with pytest.raises(HttpError) as missing:
        client.application.get(created.id)
    assert missing.value.status_code == 404 and missing.value.code == "not_found"


def test_event_types(client: Svix) -> None:
    name = f"invoice.paid{next(_n)}"
    schema = {"type": "object", "properties": {"amount": {"type": "number"}}}
    out = client.event_type.create(
        EventTypeIn(name=name, description="An invoice was paid", schemas={"1": schema})
    )
    assert out.name == name and out.schemas == {"1": schema} and not out.archived
    assert client.event_type.get(name).description == "An invoice was paid"
    assert client.event_type.patch(name, EventTypePatch(description="Paid")).description == "Paid"
    assert client.event_type.upsert(name, EventTypeUpsertIn(description="Up")).description == "Up"
    listed = client.event_type.list(EventTypeListOptions(limit=250))
    assert name in [t.name for t in listed.data]
    client.event_type.delete(name)  # archives, as Svix does
    assert client.event_type.get(name).archived
    client.event_type.delete(name, EventTypeDeleteOptions(expunge=True))
    with pytest.raises(HttpError) as gone:
        client.event_type.get(name)
    assert gone.value.status_code == 404
    with pytest.raises(HttpError) as taken:
        client.event_type.create(EventTypeIn(name="dup.type", description="x"))
        client.event_type.create(EventTypeIn(name="dup.type", description="x"))
    assert taken.value.status_code == 409 and taken.value.code == "conflict"


def test_endpoints_messages_attempts(client: Svix, verifier: VerifyingReceiver) -> None:
    app = new_app(client)
    # The secret is generated by webhookd (Svix's recommendation), read back with get_secret.
    endpoint = client.endpoint.create(
        app,
        EndpointIn(
            url=verifier.receiver.url("/placeholder"),
            uid="billing",
            description="Billing",
            event_types=["user.signup"],
            metadata={"team": "billing"},
            throttle_rate=50,
        ),
    )
    assert endpoint.uid == "billing" and endpoint.metadata == {"team": "billing"}
    assert endpoint.throttle_rate == 50 and endpoint.event_types == ["user.signup"]
    secret = client.endpoint.get_secret(app, "billing").key
    assert secret.startswith("whsec_")
    path = verifier.path(secret)
    endpoint = client.endpoint.patch(app, "billing", EndpointPatch(url=verifier.receiver.url(path)))
    assert endpoint.url.endswith(path)
    assert client.endpoint.get(app, endpoint.id).uid == "billing"
    assert [e.id for e in client.endpoint.list(app).data] == [endpoint.id]

    msg = client.message.create(
        app, MessageIn(event_type="user.signup", event_id="signup-1", payload={"user": 7})
    )
    assert msg.event_id == "signup-1" and msg.payload == {"user": 7}
    assert verifier.wait(path, 1) == [{"user": 7}]  # the payload alone is the body
    again = client.message.create(
        app, MessageIn(event_type="user.signup", event_id="signup-1", payload={"user": 7})
    )
    assert again.id == msg.id  # the original, delivered once
    changed = client.message.create(
        app, MessageIn(event_type="user.signup", event_id="signup-1", payload={"user": 9})
    )
    assert changed.id == msg.id and changed.payload == {"user": 7}  # the original still
    other = client.message.create(app, MessageIn(event_type="user.other", payload={"x": 1}))
    assert other.event_id  # generated
    assert client.message.get(app, msg.id).payload == {"user": 7}
    assert client.message.get(app, "signup-1").id == msg.id  # by eventId
    assert {m.id for m in client.message.list(app).data} == {msg.id, other.id}

    def attempts_by_msg() -> list:
        return client.message_attempt.list_by_msg(app, msg.id).data

    wait_until(lambda: attempts_by_msg(), what="an attempt of the message")
    (attempt,) = attempts_by_msg()
    assert attempt.msg_id == msg.id and attempt.endpoint_id == endpoint.id
    assert attempt.response_status_code == 200 and attempt.status == 0
    by_endpoint = client.message_attempt.list_by_endpoint(
        app, "billing", MessageAttemptListByEndpointOptions(limit=10)
    )
    assert [a.id for a in by_endpoint.data] == [attempt.id]
    assert not client.message_attempt.list_by_msg(
        app, msg.id, MessageAttemptListByMsgOptions(status=2)
    ).data

    # Rotation: the new secret signs from now on, the old one too during the grace period.
    client.endpoint.rotate_secret(app, endpoint.id, EndpointSecretRotateIn())
    new_secret = client.endpoint.get_secret(app, endpoint.id).key
    assert new_secret != secret
    verifier.secrets[path] = [new_secret]  # only the new one is accepted now
    client.message.create(app, MessageIn(event_type="user.signup", payload={"user": 8}))
    delivered = verifier.wait(path, 2)
    assert delivered[-1] == {"user": 8}
    last = verifier.receiver.received(path)[-1]
    Webhook(secret).verify(last.body, last.headers)  # the old one still signs
    assert last.header("webhook-id") == last.header("svix-id")

    client.endpoint.upsert(
        app, endpoint.id, EndpointUpsertIn(url=endpoint.url, uid="billing", disabled=True)
    )
    assert client.endpoint.get(app, "billing").disabled
    client.endpoint.delete(app, "billing")
    assert client.endpoint.list(app).data == []


def test_recover_and_resend(client: Svix, verifier: VerifyingReceiver) -> None:
    """A message dead-lettered at a failing endpoint is sent again by `endpoint.recover`
    (followed with `background_task.get`), then once more by `message_attempt.resend`."""
    app = new_app(client)
    path = verifier.path("whsec_unknown")  # answers 500 until the receiver is mended
    verifier.receiver.plan_with(path, lambda request: 500)
    endpoint = client.endpoint.create(app, EndpointIn(url=verifier.receiver.url(path)))
    secret = client.endpoint.get_secret(app, endpoint.id).key
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    msg = client.message.create(app, MessageIn(event_type="order.paid", payload={"order": 1}))

    def failed() -> int:
        return len(client.message_attempt.list_by_msg(app, msg.id).data)

    wait_until(lambda: failed() >= 7, what="every attempt failed: dead-lettered")
    verifier.secrets[path] = [secret]
    verifier.receiver.plan_with(path, verifier._answer)

    task = client.endpoint.recover(app, endpoint.id, RecoverIn(since=since))
    assert task.id.startswith("job_") and str(task.task) == "endpoint.recover"
    wait_until(
        lambda: str(client.background_task.get(task.id).status) == "finished",
        what="the recovery finished",
    )
    assert client.background_task.get(task.id).data["messagesSent"] == 1
    assert verifier.wait(path, 1) == [{"order": 1}]

    def succeeded() -> int:
        return sum(a.status == 0 for a in client.message_attempt.list_by_msg(app, msg.id).data)

    # A resend leaves a delivery still under way as it is: the receiver has answered, but
    # wait until the success is recorded before asking for another.
    wait_until(lambda: succeeded() == 1, what="the recovered attempt recorded")
    client.message_attempt.resend(app, msg.id, endpoint.id)
    assert verifier.wait(path, 2) == [{"order": 1}, {"order": 1}]
    wait_until(lambda: succeeded() == 2, what="two successful attempts recorded")
    missing = new_app(client)
    with pytest.raises(HttpError) as err:
        client.message_attempt.resend(missing, msg.id, endpoint.id)
    assert err.value.status_code == 404


def test_endpoint_headers(client: Svix) -> None:
    app = new_app(client)
    ep = client.endpoint.create(app, EndpointIn(url="http://127.0.0.1:9/x", uid="h"))
    client.endpoint.set_headers(
        app, ep.id, EndpointHeadersIn(headers={"X-Team": "a", "Authorization": "Bearer s"})
    )
    got = client.endpoint.get_headers(app, ep.id)
    assert got.headers["X-Team"] == "a" and got.sensitive == ["Authorization"]
    client.endpoint.patch_headers(
        app, "h", EndpointHeadersPatchIn(headers={"X-Env": "prod"}, delete_headers=["X-Team"])
    )
    got = client.endpoint.get_headers(app, "h")
    assert set(got.headers) == {"Authorization", "X-Env"}


def test_channels(client: Svix, verifier: VerifyingReceiver) -> None:
    app = new_app(client)
    everything = verifier.path("")
    in_a = verifier.path("")
    for path, channels in ((everything, None), (in_a, ["a"])):
        ep = client.endpoint.create(
            app, EndpointIn(url=verifier.receiver.url(path), channels=channels)
        )
        verifier.secrets[path] = [client.endpoint.get_secret(app, ep.id).key]
    client.message.create(app, MessageIn(event_type="t", payload={"n": 1}, channels=["b"]))
    client.message.create(app, MessageIn(event_type="t", payload={"n": 2}, channels=["a"]))
    client.message.create(app, MessageIn(event_type="t", payload={"n": 3}))
    verifier.wait(everything, 3)
    assert verifier.wait(in_a, 1) == [{"n": 2}]
    assert client.message.get(app, client.message.list(app).data[1].id).channels == ["a"]


def test_portal_access(client: Svix, server: LiveServer) -> None:
    app = new_app(client)
    access = client.authentication.app_portal_access(app, AppPortalAccessIn())
    assert access.token in access.url
    opened = httpx.get(access.url, follow_redirects=False)
    assert opened.status_code in (200, 303), opened.text


def test_errors_as_svix_answers_them(client: Svix, server: LiveServer) -> None:
    with pytest.raises(HttpError) as missing:
        client.application.get("no-such-app")
    assert (missing.value.status_code, missing.value.code) == (404, "not_found")
    with pytest.raises(HTTPValidationError) as invalid:
        client.endpoint.create(new_app(client), EndpointIn(url="ftp://x"))
    assert invalid.value.detail[0].loc[-1] == "url"
    with pytest.raises(HttpError) as unauthorized:
        svix(server, "wrong-token").application.list()
    assert unauthorized.value.status_code == 401
    raw = httpx.post(f"{server.url}/api/v1/app", json={"name": 1}, headers=_bearer())
    assert raw.status_code == 422
    assert {"loc", "msg", "type"} <= set(raw.json()["detail"][0])
    unknown = httpx.get(f"{server.url}/api/v1/app/x/msg/y", headers=_bearer())
    assert unknown.status_code == 404 and set(unknown.json()) == {"code", "detail"}


def _bearer(token: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tenant_key_sees_only_its_application(
    client: Svix, server: LiveServer, admin: httpx.Client
) -> None:
    tenant = create_tenant(server, admin)
    other = new_app(client)
    own = svix(server, tenant.api_key)
    assert [a.id for a in own.application.list().data] == [tenant.id]
    assert own.application.get(tenant.id).id == tenant.id
    for call in (
        lambda: own.application.get(other),
        lambda: own.endpoint.list(other),
        lambda: own.message.create(other, MessageIn(event_type="t", payload={})),
    ):
        with pytest.raises(HttpError) as hidden:
            call()
        assert hidden.value.status_code == 404
    with pytest.raises(HttpError) as forbidden:
        own.application.create(ApplicationIn(name="mine"))
    assert (forbidden.value.status_code, forbidden.value.code) == (403, "forbidden")
    # A native tenant keeps webhookd's envelope; its endpoints sign with its own secret.
    ep = own.endpoint.create(tenant.id, EndpointIn(url="http://127.0.0.1:9/n"))
    assert own.endpoint.get_secret(tenant.id, ep.id).key != tenant.secret_key


def test_a_message_sent_again_with_its_idempotency_key_is_not_sent_twice(
    client: Svix, verifier: VerifyingReceiver
) -> None:
    app = new_app(client)
    ep = client.endpoint.create(app, EndpointIn(url=verifier.receiver.url("/placeholder")))
    path = verifier.path(client.endpoint.get_secret(app, ep.id).key)
    client.endpoint.patch(app, ep.id, EndpointPatch(url=verifier.receiver.url(path)))
    options = MessageCreateOptions(idempotency_key=f"msg-key-{next(_n)}")
    first = client.message.create(app, MessageIn(event_type="t", payload={"n": 1}), options)
    second = client.message.create(app, MessageIn(event_type="t", payload={"n": 1}), options)
    assert second.id == first.id
    verifier.wait(path, 1)
    assert [m.id for m in client.message.list(app).data] == [first.id]


def test_idempotency_key_gives_the_same_answer(client: Svix) -> None:
    key = f"key-{next(_n)}"
    options = ApplicationCreateOptions(idempotency_key=key)
    first = client.application.create(ApplicationIn(name="once"), options)
    second = client.application.create(ApplicationIn(name="once"), options)
    assert first.id == second.id
    third = client.application.create(ApplicationIn(name="once"))
    assert third.id != first.id


def _node() -> str:
    """The machine's Node, with the pinned SDK installed (by .ci/run); a skip without them,
    a failure when services are required (CI)."""
    node = shutil.which("node")
    missing = (
        "node is not installed"
        if node is None
        else None
        if (JS_DIR / "node_modules" / "svix").is_dir()
        else f"the Svix JS SDK is not installed: cd {JS_DIR} && npm ci"
    )
    if missing is None and node is not None:
        return node
    if services_required():
        pytest.fail(f"{missing} and WEBHOOKD_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{missing} (set WEBHOOKD_REQUIRE_SERVICES=1 to make this a failure)")


def test_a_missing_javascript_sdk_fails_when_services_are_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without `npm ci` in tests/svix_js, CI (WEBHOOKD_REQUIRE_SERVICES=1) fails; a laptop
    skips, saying why."""
    monkeypatch.setattr(sys.modules[__name__], "JS_DIR", tmp_path)
    monkeypatch.setenv("WEBHOOKD_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="npm ci"):
        _node()
    monkeypatch.setenv("WEBHOOKD_REQUIRE_SERVICES", "0")
    with pytest.raises(pytest.skip.Exception):
        _node()


def test_javascript_sdk(server: LiveServer) -> None:
    """The official JavaScript SDK (npm `svix`, pinned in tests/svix_js/package.json) through
    the same calls, with its own receiver verifying every delivery with `Webhook.verify`."""
    node = _node()
    env = {**os.environ, "SVIX_SERVER_URL": server.url, "SVIX_TOKEN": ADMIN_KEY}
    run = subprocess.run(  # noqa: S603 - our script, the machine's node
        [node, str(JS_DIR / "drive.cjs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["verified"] >= 2
    assert "messageAttempt.*" in result["checked"] and "errors" in result["checked"]
