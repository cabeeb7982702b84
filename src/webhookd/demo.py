"""``webhookd demo``: the first signed webhook on screen, and how to do the same with curl.

Starts a local listener, then uses a running webhookd (``--url``, with the admin key from
``--admin-key``, ``WEBHOOKD_ADMIN_KEY`` or the development key file) or, when none answers
or it refuses a loopback target (its SSRF guard), starts one of its own on a temporary
SQLite database. It creates a demo tenant and an endpoint on the listener, publishes a
sample event, waits for the delivery, verifies its signature as a receiver would, and
prints the request and the curl commands that do the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from aiohttp import web

from webhookd.config import Settings
from webhookd.verify import WebhookVerificationError, verify

SAMPLE = {
    "order_id": "ord_1001",
    "customer": {"id": "cus_42", "country": "DE"},
    "amount": 4990,
    "currency": "EUR",
}
SHOWN_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "x-webhook-event-type")


class DemoError(Exception):
    """What went wrong, in a sentence."""


@dataclass
class Listener:
    """A local receiver that keeps what it got."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        self.arrived.set()
        return web.json_response({"received": True})


@contextlib.asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    listener = Listener()
    app = web.Application()
    app.router.add_post("/webhooks", listener.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    listener.url = f"http://127.0.0.1:{port}/webhooks"
    try:
        yield listener
    finally:
        await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def own_server() -> AsyncIterator[tuple[str, str]]:
    """webhookd on a temporary SQLite database, loopback allowed as a target (the SSRF
    guard stays on for everything else): (base URL, admin key)."""
    from webhookd.api.server import Server, server_options
    from webhookd.app import create_app
    from webhookd.migrate import upgrade

    with tempfile.TemporaryDirectory(prefix="webhookd-demo-") as directory:
        settings = Settings(
            database_url=f"sqlite:///{Path(directory) / 'demo.db'}",
            allowed_networks="127.0.0.1/32",
            log_level="WARNING",
            admin_key="whadm_demo_" + str(time.time_ns()),
        )
        await asyncio.to_thread(upgrade, settings)  # alembic runs its own event loop
        port = _free_port()
        options = server_options(settings)
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, **options)
        server = Server(config)
        task = asyncio.create_task(server.serve())
        deadline = time.monotonic() + 20
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise DemoError("the demo server did not start")
            await asyncio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}", settings.admin_key or ""
        finally:
            server.should_exit = True
            await task


async def _answers(client: aiohttp.ClientSession, url: str) -> bool:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with client.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=2)) as resp:
            return resp.status == 200
    return False


async def _call(
    client: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], body: Any
) -> tuple[int, Any]:
    async with client.request(method, url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


@dataclass
class Walkthrough:
    base: str
    admin_key: str
    tenant: dict[str, Any] = field(default_factory=dict)
    endpoint: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""


async def _run_against(
    client: aiohttp.ClientSession, base: str, admin_key: str, listener: Listener
) -> Walkthrough:
    walk = Walkthrough(base, admin_key)
    admin = {"X-Admin-Key": admin_key}
    status, tenant = await _call(
        client,
        "POST",
        f"{base}/api/v1/tenants",
        admin,
        {"name": "webhookd demo", "email": "demo@example.com"},
    )
    if status == 401:
        raise DemoError(f"the server at {base} refused the admin key (give it with --admin-key)")
    if status != 201:
        raise DemoError(f"creating the demo tenant answered {status}: {tenant}")
    walk.tenant = tenant
    tenant_key = {"X-API-Key": tenant["api_key"]}
    status, endpoint = await _call(
        client,
        "POST",
        f"{base}/api/v1/tenants/{tenant['id']}/endpoints",
        tenant_key,
        {"url": listener.url, "event_types": ["order.completed"], "description": "demo"},
    )
    if status == 422:
        raise LoopbackRefused(str(endpoint.get("error", {}).get("message", endpoint)))
    if status != 201:
        raise DemoError(f"creating the endpoint answered {status}: {endpoint}")
    walk.endpoint = endpoint
    walk.event_id = f"demo-{time.time_ns()}"
    status, accepted = await _call(
        client,
        "POST",
        f"{base}/api/v1/events",
        tenant_key,
        {"event_id": walk.event_id, "event_type": "order.completed", "payload": SAMPLE},
    )
    if status != 202:
        raise DemoError(f"publishing answered {status}: {accepted}")
    try:
        await asyncio.wait_for(listener.arrived.wait(), timeout=15)
    except TimeoutError:
        raise DemoError("the delivery did not arrive within 15 s") from None
    return walk


class LoopbackRefused(DemoError):
    """The server's SSRF guard refuses the local listener."""


def _curl(walk: Walkthrough, *, own_server: bool) -> list[str]:
    """The same steps with curl: against the server used, or, when the demo ran its own
    (gone when it ends), against `make run` on localhost, from creating a tenant on."""
    q = shlex.quote
    if own_server:
        base, tenant_id, key = "http://localhost:8000", "$TENANT_ID", "$API_KEY"
        lines = [
            "The same with curl, against `make run` (http://localhost:8000):",
            "",
            "  ADMIN_KEY=$(cat webhookd.db.admin-key)",
            f'  curl -s -X POST {base}/api/v1/tenants -H "X-Admin-Key: $ADMIN_KEY" \\',
            "    -H 'Content-Type: application/json' \\",
            '    -d \'{"name": "My Company", "email": "webhooks@mycompany.com"}\'',
            "  # the answer holds id (TENANT_ID), api_key (API_KEY, shown once) and secret_key",
        ]
        auth = '-H "X-API-Key: $API_KEY"'
    else:
        base, tenant_id, key = walk.base, walk.tenant["id"], walk.tenant["api_key"]
        lines = ["The same with curl, for this demo tenant:"]
        auth = f"-H {q('X-API-Key: ' + key)}"
    return [
        *lines,
        "",
        f"  curl -X POST {base}/api/v1/tenants/{tenant_id}/endpoints {auth} \\",
        "    -H 'Content-Type: application/json' \\",
        '    -d \'{"url": "https://your-app.example/webhooks", '
        '"event_types": ["order.completed"]}\'',
        "",
        f"  curl -X POST {base}/api/v1/events {auth} \\",
        "    -H 'Content-Type: application/json' \\",
        '    -d \'{"event_id": "ord_1002", "event_type": "order.completed", '
        '"payload": {"order_id": "ord_1002"}}\'',
        "",
        f"  curl {base}/api/v1/events/ord_1002/deliveries {auth}",
        *(
            []
            if own_server
            else ["", f"The demo tenant's signing secret: {walk.tenant['secret_key']}"]
        ),
    ]


def _show(walk: Walkthrough, listener: Listener, *, own_server: bool) -> str:
    headers, body = listener.received[0]
    lines = [
        "",
        f"Delivered: POST {listener.url}",
        *(f"  {name}: {headers[name]}" for name in headers if name.lower() in SHOWN_HEADERS),
        "",
        json.dumps(json.loads(body), indent=2),
        "",
    ]
    try:
        verify(body, headers, walk.tenant["secret_key"])
        lines.append(
            "Signature verified: webhookd.verify(body, headers, secret) accepted it "
            "(Standard Webhooks: webhook-id, webhook-timestamp, body)."
        )
    except WebhookVerificationError as exc:
        lines.append(f"Signature NOT verified: {exc}")
    lines += ["", *_curl(walk, own_server=own_server)]
    return "\n".join(lines)


async def run_demo(url: str | None, admin_key: str | None) -> str:
    """The walkthrough, as the text to print."""
    notes: list[str] = []
    async with aiohttp.ClientSession() as client, listening() as listener:
        base = (url or "http://127.0.0.1:8000").rstrip("/")
        if admin_key and await _answers(client, base):
            notes.append(f"Using the webhookd at {base}.")
            try:
                walk = await _run_against(client, base, admin_key, listener)
                return "\n".join(notes) + _show(walk, listener, own_server=False)
            except LoopbackRefused as exc:
                notes.append(
                    f"It refuses the demo's local listener ({exc}): its SSRF guard is on. "
                    "Start it with WEBHOOKD_ALLOWED_NETWORKS=127.0.0.1/32 to try it there."
                )
        elif url:
            raise DemoError(f"no webhookd answers at {base}, or no admin key was given")
        notes.append("Starting a webhookd of its own on a temporary SQLite database.")
        async with own_server() as (own, key):
            walk = await _run_against(client, own, key, listener)
            return "\n".join(notes) + _show(walk, listener, own_server=True)
