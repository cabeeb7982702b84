"""One HTTP try of one delivery: build the body, sign it, POST it, classify what happened.

No database and no queue here: the engine (in-process or a distributed worker) claims the
work and records the outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ssl
import time
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network

import aiohttp
import orjson

from webhookd.db import network_wait
from webhookd.delivery import ssrf
from webhookd.delivery.job import Job, Outcome
from webhookd.delivery.retry import parse_retry_after
from webhookd.delivery.signing import signature_headers


@functools.lru_cache(maxsize=4096)
def _check_target(
    url: str, allow_private: bool, allow_networks: tuple[IPv4Network | IPv6Network, ...]
) -> None:
    """The URL checks that depend on nothing but the URL and the settings, once per URL
    (a refusal raises and is not cached: it is checked again next time)."""
    target = ssrf.parse_target(url)
    ssrf.check_literal(target, allow_private=allow_private, allow_networks=allow_networks)


def build_body(job: Job) -> bytes:
    """The webhookd envelope; in Svix's format (not for operational notices), the payload
    alone."""
    if job.svix and not job.operational:
        return orjson.dumps(job.payload)
    # created_at is UTC: orjson writes it as isoformat() would, with "Z"
    return orjson.dumps(
        {
            "event_id": job.event_id,
            "event_type": job.event_type,
            "payload": job.payload,
            "created_at": job.created_at,
        },
        option=orjson.OPT_UTC_Z,
    )


def build_headers(job: Job, body: bytes, timestamp: int) -> dict[str, str]:
    """The endpoint's custom headers, then webhookd's own (which no custom header may
    replace: the API refuses their names)."""
    headers = dict(job.headers) if job.headers else {}
    headers.update(
        signature_headers(
            secret=job.secrets,
            msg_id=job.message_id,
            timestamp=timestamp,
            body=body,
            svix=job.svix,
        )
    )
    headers["Content-Type"] = "application/json"
    headers["X-Webhook-Event-Type"] = job.event_type
    headers["X-Webhook-Attempt"] = str(job.attempt_number)
    return headers


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def body_excerpt(raw: bytes, limit: int) -> str:
    """``raw`` as text of at most ``limit`` bytes in UTF-8.

    Undecodable bytes become U+FFFD (three bytes each) and the cut may split a character,
    so the decoded text is cut again, on a character boundary, to fit the limit. NUL
    characters (which PostgreSQL text columns refuse) become U+FFFD too.
    """
    text = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    encoded = text.encode("utf-8")
    if len(encoded) > limit:
        text = encoded[:limit].decode("utf-8", errors="ignore")
    return text


def classify_error(exc: BaseException) -> tuple[str, str]:
    """(error_kind, message) for an exception raised while sending."""
    reason = ssrf.refused_reason(exc)
    if reason is not None:
        return "refused_target", reason
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout", "no complete response within the timeout"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "tls", str(exc) or type(exc).__name__
    if isinstance(exc, ssl.SSLError):
        return "tls", str(exc)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns", str(exc)
    if isinstance(exc, aiohttp.InvalidURL):
        return "invalid_url", str(exc)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection", str(exc) or type(exc).__name__
    return "error", f"{type(exc).__name__}: {exc}"


async def perform_attempt(
    client: aiohttp.ClientSession,
    job: Job,
    *,
    allow_private: bool,
    allow_networks: Sequence[IPv4Network | IPv6Network] = (),
    body_limit: int,
) -> Outcome:
    network_wait("a delivery attempt")
    started_at = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    status: int | None = None
    text: str | None = None
    retry_after: float | None = None
    try:
        # aiohttp skips the resolver for IP literals: check those here, every attempt.
        _check_target(job.url, allow_private, tuple(allow_networks))
        body = build_body(job)
        headers = build_headers(job, body, int(time.time()))
        async with client.post(job.url, data=body, headers=headers, allow_redirects=False) as resp:
            status = resp.status
            text = body_excerpt(await _read_capped(resp, body_limit), body_limit)
            if status in (429, 503):
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), started_at)
    except Exception as exc:  # every failure is a recorded attempt, never a crash
        kind, message = classify_error(exc)
        return Outcome(
            job,
            started_at,
            (time.perf_counter() - start) * 1000,
            succeeded=False,
            response_status=status,
            response_body=text,
            error_kind=kind,
            error_message=message[:1000],
        )
    duration_ms = (time.perf_counter() - start) * 1000
    if 200 <= status < 300:
        return Outcome(job, started_at, duration_ms, True, status, text)
    return Outcome(
        job,
        started_at,
        duration_ms,
        succeeded=False,
        response_status=status,
        response_body=text,
        error_kind="http_status",
        error_message=f"receiver answered HTTP {status}"
        + (" (redirects are not followed)" if 300 <= status < 400 else ""),
        retry_after=retry_after,
    )
