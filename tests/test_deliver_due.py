"""``deliver_due(runtime)``: the claim → attempt → record cycle, called without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fixtures.db import BACKENDS, TestDatabase
from tests.fixtures.receiver import Receiver
from tests.fixtures.server import make_settings
from webhookd.delivery.signing import standard_signature
from webhookd.event.schemas import EventCreate
from webhookd.migrate import upgrade
from webhookd.models import DeliveryStatus, Endpoint
from webhookd.runtime import Runtime, build_runtime, deliver_due
from webhookd.tenant.schemas import TenantCreate
from webhookd.tenant.service import create_tenant


async def _scenario(runtime: Runtime, receiver: Receiver) -> None:
    async with runtime.db.write() as session:
        new = await create_tenant(
            session, data=TenantCreate(name="t", email="t@example.com"), secrets=runtime.secrets
        )
        for path in ("/ok", "/down"):
            session.add(Endpoint(tenant_id=new.tenant.id, url=receiver.url(path), event_types=[]))
    receiver.plan("/down", default=503)
    event = EventCreate(event_id="evt_1", event_type="user.created", payload={"n": 1})
    accepted = await runtime.publisher.publish(new.tenant.id, event)
    assert [d.status for d in accepted.deliveries] == [DeliveryStatus.PENDING] * 2

    transitions = await deliver_due(runtime)
    assert {t.status for t in transitions} == {DeliveryStatus.SUCCEEDED, DeliveryStatus.RETRYING}
    (ok,) = receiver.received("/ok")
    message_id = next(t.outcome.job.message_id for t in transitions if t.status == "succeeded")
    assert ok.header("webhook-id") == message_id == accepted.deliveries[0].id
    timestamp = int(ok.header("webhook-timestamp") or 0)
    expected = standard_signature(new.secret_key, message_id, timestamp, ok.body)
    assert ok.header("webhook-signature") == expected
    # The failed delivery's next attempt is scheduled for later, not made now.
    assert await deliver_due(runtime) == []
    assert len(receiver.received("/down")) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_deliver_due_without_a_server(tmp_path: Path, backend: str) -> None:
    database = TestDatabase(backend, tmp_path)
    receiver = Receiver().start()
    try:
        # No engine of its own (run_workers off): only deliver_due delivers. The first retry
        # waits a minute, so the second call finds nothing due.
        slow_retries = {"retry_base_delay": 60, "retry_max_delay": 60}
        settings = make_settings(database.url, run_workers=False, **slow_retries)
        upgrade(settings)

        async def run() -> None:
            async with build_runtime(settings) as runtime:
                await _scenario(runtime, receiver)

        asyncio.run(run())
    finally:
        receiver.stop()
        database.drop()
