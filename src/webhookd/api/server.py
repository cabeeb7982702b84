"""How ``webhookd serve`` runs uvicorn, and the request limits httptools lacks.

uvicorn's httptools protocol puts no cap on the request head and no deadline on a slow
client: :class:`BoundedHttpToolsProtocol` adds both. A head (request line and headers)
over ``max_request_head_bytes`` or with more than ``max_request_headers`` headers is
answered ``431`` and the connection closed, before the app sees it; a client that takes
longer than ``request_head_timeout`` to send the head, or ``request_body_timeout`` to send
the body, is answered ``408`` (when no response has started) and cut off. The limits come
from the settings through the app's lifespan state (``LIMITS_KEY``), so every process of
``serve --workers N`` applies its own settings.

Forwarded headers (``X-Forwarded-For``) are believed only from ``WEBHOOKD_TRUSTED_PROXIES``
(default: from nobody), so a client cannot choose the address the brute-force throttle
counts against.

:class:`Server` is uvicorn's server with its housekeeping tick (the ``Date`` header, the
exit flag) once a second instead of ten times: most of an idle server's wake-ups were that
tick. Asking it to stop wakes it at once, so shutdown is no slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from webhookd.config import Settings

LIMITS_KEY = "webhookd.http_limits"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_head_bytes: int = 16 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    body_timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_head_bytes=settings.max_request_head_bytes,
            max_headers=settings.max_request_headers,
            head_timeout=settings.request_head_timeout,
            body_timeout=settings.request_body_timeout,
        )


class _HeadTooLarge(Exception):
    pass


def _error_response(status: bytes, code: str, message: str) -> bytes:
    """A whole HTTP response in the API's JSON error shape, closing the connection."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        len(body),
    )
    return head + b"connection: close\r\n\r\n" + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = app_state.get(LIMITS_KEY)
        self.limits = limits if isinstance(limits, HttpLimits) else HttpLimits()
        self._in_head = True
        self._head_size = 0  # bytes of the head parsed so far (request line and headers)
        self._head_received = 0  # bytes received while the head was incomplete
        self._header_count = 0
        self._head_too_large = False
        self._deadline: asyncio.TimerHandle | None = None

    # -- deadlines ---------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._in_head or self.cycle is None or not self.cycle.response_started:
            what = "head" if self._in_head else "body"
            message = f"the request {what} was not received in time"
            self.transport.write(
                _error_response(b"408 Request Timeout", "request_timeout", message)
            )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # -- the head ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_received += len(data)
        super().data_received(data)
        # A header still incomplete is buffered by httptools until it ends: count the bytes.
        if (
            self._in_head
            and self._head_received > self.limits.max_head_bytes
            and not self.transport.is_closing()
        ):
            self._head_too_large = True
            self.send_400_response("")

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > self.limits.max_head_bytes or (
            self._header_count > self.limits.max_headers
        ):
            self._head_too_large = True
            raise _HeadTooLarge  # httptools stops; uvicorn calls send_400_response

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        message = (
            f"the request head is over {self.limits.max_head_bytes} bytes "
            f"or {self.limits.max_headers} headers"
        )
        status = b"431 Request Header Fields Too Large"
        self.transport.write(_error_response(status, "request_header_fields_too_large", message))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_size = self._header_count = 0
        self._arm(self.limits.head_timeout)

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._count_head(len(name) + len(value) + 4)  # "name: value\r\n"
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_received = 0
        self._arm(self.limits.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True  # what comes next is the next request's head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._disarm()  # an early answer (e.g. 413) ends the wait for the body
        super().on_response_complete()


# httptools wraps an exception raised in a callback in this error (a parse error).
assert issubclass(httptools.HttpParserCallbackError, httptools.HttpParserError)


def server_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings of ``webhookd serve`` (the tests' servers use them too)."""
    trusted = settings.trusted_proxy_list
    return {
        "http": BoundedHttpToolsProtocol,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "access_log": False,
        "log_config": None,  # keep the JSON handlers set up by create_app
        "log_level": "warning",
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
        "server_header": False,
    }


class Server(uvicorn.Server):
    """uvicorn's server, ticking every ``tick`` seconds (uvicorn: 0.1 s); setting
    ``should_exit`` (a signal handler, another thread) wakes the tick at once."""

    tick = 1.0

    def __init__(self, config: Config) -> None:
        self._exit_requested = False
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        super().__init__(config)

    @property
    def should_exit(self) -> bool:
        return self._exit_requested

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit_requested = value
        if value and self._wake is not None:
            loop, event = self._wake
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
                loop.call_soon_threadsafe(event.set)

    async def main_loop(self) -> None:
        event = asyncio.Event()
        self._wake = (asyncio.get_running_loop(), event)
        counter = 0  # on_tick refreshes the Date header when counter % 10 == 0: every tick
        while not await self.on_tick(counter):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), self.tick)
            counter = (counter + 10) % 864000
        self._wake = None


def run(app: Any, *, workers: int, host: str, port: int, settings: Settings) -> None:
    """Serve ``app`` as ``webhookd serve`` does: one process on :class:`Server`, or
    ``workers`` processes under uvicorn's supervisor (``app`` is then the factory's import
    string; each process ticks as uvicorn does)."""
    options = {"host": host, "port": port, "loop": "uvloop", **server_options(settings)}
    if workers > 1:
        uvicorn.run(app, factory=True, workers=workers, **options)
        return
    server = Server(Config(app, **options))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE
