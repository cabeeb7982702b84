"""``webhookd listen`` (alias ``webhookd receiver``): a webhook receiver for your own machine.

Prints each delivery (event type, ``webhook-id``, attempt, signature verdict, pretty JSON
body), answers it, and can play a failing receiver (``--status``, ``--delay``,
``--fail-every``) or forward each delivery to the application under development
(``--forward-to``). Imports only aiohttp, orjson and ``webhookd.verify``: it runs from the
light install.
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import web

from webhookd.verify import WebhookVerificationError, verify_standard, verify_x_webhook_signature

DEFAULT_FAILURE_STATUS = 503
FORWARD_TIMEOUT = 30.0  # seconds; a breakpoint in the application under development may pause it
BODY_EXCERPT = 2000  # bytes of a non-JSON body printed
# Request headers not forwarded: per-connection ones, and those aiohttp computes itself.
_NOT_FORWARDED = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer")
    + ("upgrade", "proxy-authorization", "proxy-connection", "accept-encoding")
)
# Headers already on the delivery line, or that say nothing about the delivery.
_NOT_SHOWN = _NOT_FORWARDED | {"user-agent", "accept", "webhook-signature", "x-webhook-signature"}
_NOT_SHOWN |= {"x-webhook-event-type", "webhook-id", "x-webhook-attempt"}
_FORWARDED_ANSWER_HEADERS = ("Content-Type", "Retry-After")
_COLORS = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


@dataclass(frozen=True)
class ListenOptions:
    host: str = "127.0.0.1"
    port: int = 9000
    secret: str | None = None
    status: int = 200
    delay: float = 0.0
    fail_every: int | None = None
    forward_to: str | None = None
    color: bool = False


def _ok_and_failure(status: int) -> tuple[int, int]:
    """The answer of the requests that do not fail, and of those that do, under --fail-every."""
    return (status, DEFAULT_FAILURE_STATUS) if 200 <= status < 300 else (200, status)


def answer_status(count: int, status: int, fail_every: int | None) -> tuple[int, bool]:
    """The status for the ``count``-th request (from 1), and whether it is a simulated failure.

    Without ``fail_every`` every request answers ``status``. With it, every ``fail_every``-th
    request fails: with ``status`` itself if that is not a 2xx (and the others answer 200),
    otherwise with 503 (and the others answer ``status``)."""
    if fail_every is None:
        return status, not 200 <= status < 300
    ok, failure = _ok_and_failure(status)
    return (failure, True) if count % fail_every == 0 else (ok, False)


def use_color(flag: bool | None, isatty: bool, environ: Mapping[str, str]) -> bool:
    """``--color`` / ``--no-color`` decide; otherwise colour only on a terminal, never when
    NO_COLOR is set to anything non-empty (https://no-color.org) or TERM is ``dumb``."""
    if flag is not None:
        return flag
    return isatty and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"


def paint(text: str, style: str, color: bool) -> str:
    """``text`` in the ANSI ``style`` ("bold", "red", "green" ...) when colour is on."""
    return f"\x1b[{_COLORS[style]}m{text}\x1b[0m" if color else text


@dataclass(frozen=True)
class SignatureCheck:
    checked: bool
    valid: bool
    detail: str


def check_signatures(body: bytes, headers: Mapping[str, str], secret: str | None) -> SignatureCheck:
    """Both of webhookd's signatures. Valid: the Standard Webhooks signature matches (as
    ``webhookd.verify.verify`` requires) and ``X-Webhook-Signature``, when sent, matches too."""
    if not secret:
        return SignatureCheck(checked=False, valid=False, detail="not checked (no --secret)")
    x_signature = headers.get("X-Webhook-Signature")
    checks: list[tuple[str, Callable[[], None]]] = [
        ("standard-webhooks", lambda: verify_standard(body, headers, secret)),
        ("X-Webhook-Signature", lambda: verify_x_webhook_signature(body, x_signature, secret)),
    ]
    results, valid = [], True
    for name, check in checks:
        if name == "X-Webhook-Signature" and x_signature is None:
            results.append(f"{name} absent")
            continue
        try:
            check()
            results.append(f"{name} OK")
        except WebhookVerificationError as exc:
            results.append(f"{name} FAILED ({exc})")
            valid = False
    return SignatureCheck(checked=True, valid=valid, detail=", ".join(results))


def format_body(body: bytes) -> str:
    """Pretty JSON, or the first BODY_EXCERPT bytes as text."""
    if not body:
        return "(empty body)"
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        text = body[:BODY_EXCERPT].decode("utf-8", errors="replace")
        return text + (f"\n… ({len(body)} bytes in all)" if len(body) > BODY_EXCERPT else "")


def format_request(
    count: int,
    request: web.BaseRequest,
    body: bytes,
    signature: SignatureCheck,
    color: bool,
) -> str:
    headers = request.headers
    line = (
        f"{paint(time.strftime('%H:%M:%S'), 'dim', color)} #{count} "
        f"{paint(f'--> {request.method} {request.path_qs}', 'bold', color)}  "
        f"event_type={paint(headers.get('X-Webhook-Event-Type', '-'), 'cyan', color)}  "
        f"webhook-id={headers.get('webhook-id', '-')}  "
        f"attempt={headers.get('X-Webhook-Attempt', '-')}"
    )
    if not signature.checked:
        verdict = paint("signature not checked", "yellow", color) + " (no --secret)"
    elif signature.valid:
        verdict = paint("signature valid", "green", color) + f": {signature.detail}"
    else:
        verdict = paint("signature INVALID", "red", color) + f": {signature.detail}"
    shown = [f"{k}: {v}" for k, v in headers.items() if k.lower() not in _NOT_SHOWN]
    extra = f"\n    headers: {'; '.join(shown)}" if shown else ""
    return f"{line}\n    {verdict}{extra}\n{format_body(body)}"


def format_answer(status: int, note: str, started: float, color: bool) -> str:
    style = "green" if 200 <= status < 300 else "red"
    elapsed = f"({(time.monotonic() - started) * 1000:.0f} ms)"
    return f"{paint(f'<-- {status}', style, color)}{f'  {note}' if note else ''}  {elapsed}"


def forward_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The delivery's headers minus the per-connection ones: the signatures, webhookd's
    ``X-Webhook-*``, Content-Type and the endpoint's custom headers all arrive."""
    return {k: v for k, v in headers.items() if k.lower() not in _NOT_FORWARDED}


async def _forward(
    session: aiohttp.ClientSession, url: str, request: web.BaseRequest, body: bytes
) -> tuple[web.Response, str]:
    try:
        headers = forward_headers(request.headers)
        async with session.request(
            request.method, url, data=body, headers=headers, allow_redirects=False
        ) as answer:
            data = await answer.read()
            kept = {h: answer.headers[h] for h in _FORWARDED_ANSWER_HEADERS if h in answer.headers}
            return web.Response(status=answer.status, body=data, headers=kept), f"from {url}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = 504 if isinstance(exc, TimeoutError) else 502
        reason = f"forward to {url} failed: {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
        return web.json_response(
            {"error": "forward_failed", "detail": reason}, status=status
        ), reason


def build_app(options: ListenOptions) -> web.Application:
    count = 0
    sessions: list[aiohttp.ClientSession] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal count
        count += 1  # on arrival: --fail-every counts requests in the order they come in
        number, started = count, time.monotonic()
        body = await request.read()
        signature = check_signatures(body, request.headers, options.secret)
        print(format_request(number, request, body, signature, options.color), flush=True)
        if options.delay:
            await asyncio.sleep(options.delay)
        status, failing = answer_status(number, options.status, options.fail_every)
        notes = [f"after a {options.delay:g}s delay"] if options.delay else []
        if failing and options.fail_every is not None:
            notes.append(f"simulated failure (--fail-every {options.fail_every})")
        if options.forward_to and not failing:
            response, note = await _forward(sessions[0], options.forward_to, request, body)
            notes.append(note)
        else:
            answer = {"error": "simulated_failure"} if failing else {"received": True}
            response = web.json_response({**answer, "request": number}, status=status)
        note = ", ".join(notes)
        print(format_answer(response.status, note, started, options.color), flush=True)
        return response

    async def forwarding_session(app: web.Application) -> AsyncIterator[None]:
        if options.forward_to:
            timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT)
            sessions.append(aiohttp.ClientSession(timeout=timeout))
        yield
        for session in sessions:
            await session.close()

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.cleanup_ctx.append(forwarding_session)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def describe(options: ListenOptions) -> str:
    """What the listener does, for its first line."""
    if options.fail_every is None:
        parts = [f"answers {options.status}"]
    else:
        ok, failure = _ok_and_failure(options.status)
        n = options.fail_every
        parts = [f"answers {ok}, {failure} to requests {n}, {2 * n}, {3 * n}…"]
    if options.delay:
        parts.append(f"after {options.delay:g}s")
    if options.forward_to:
        parts.append(f"forwards to {options.forward_to}")
    parts.append("verifies signatures" if options.secret else "no --secret: signatures unchecked")
    return "; ".join(parts)


def run(options: ListenOptions) -> None:
    if isinstance(sys.stdout, io.TextIOWrapper):  # a body in UTF-8 on an ASCII terminal
        sys.stdout.reconfigure(errors="backslashreplace")
    print(
        f"webhookd listen on http://{options.host}:{options.port}/ ({describe(options)})",
        flush=True,
    )
    web.run_app(build_app(options), host=options.host, port=options.port, print=None)
