"""``webhookd receiver``: a local endpoint that prints each webhook and checks its signature.

For trying webhookd out and for debugging: point an endpoint at it, publish, watch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson
from aiohttp import web

from webhookd.verify import WebhookVerificationError, verify_standard, verify_x_webhook_signature


def _check(body: bytes, headers: Mapping[str, str], secret: str | None) -> str:
    if not secret:
        return "signature not checked (no --secret)"
    results = []
    checks: list[tuple[str, Callable[[], None]]] = [
        ("standard-webhooks", lambda: verify_standard(body, headers, secret)),
        (
            "X-Webhook-Signature",
            lambda: verify_x_webhook_signature(body, headers.get("X-Webhook-Signature"), secret),
        ),
    ]
    for name, check in checks:
        try:
            check()
            results.append(f"{name} OK")
        except WebhookVerificationError as exc:
            results.append(f"{name} FAILED ({exc})")
    return ", ".join(results)


def build_app(secret: str | None, status: int) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            shown = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            shown = body[:2000].decode("utf-8", errors="replace")
        print(
            f"--> {request.method} {request.path}  "
            f"event_type={request.headers.get('X-Webhook-Event-Type')}  "
            f"webhook-id={request.headers.get('webhook-id')}  "
            f"attempt={request.headers.get('X-Webhook-Attempt')}\n"
            f"    {_check(body, request.headers, secret)}\n{shown}\n"
            f"<-- {status}",
            flush=True,
        )
        return web.json_response({"received": True}, status=status)

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def run(host: str, port: int, secret: str | None, status: int) -> None:
    print(f"webhookd receiver listening on http://{host}:{port}/ (answers {status})", flush=True)
    web.run_app(build_app(secret, status), host=host, port=port, print=None)
