"""What ``serve``, ``worker`` and ``migrate`` check before they start anything, and the one
line an operator reads when something is wrong: an invalid setting, an unsupported or
unreachable database, a port in use, an unreachable broker. Each check raises
:class:`StartupError` with that sentence; the CLI prints it and exits non-zero, before the
delivery engine (or anything else) has started.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from webhookd.config import Settings, mask_password
from webhookd.db import Database


class StartupError(Exception):
    """A sentence for the operator; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def load_settings() -> Settings:
    """The settings from the environment; an invalid value names its variable."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            shown = repr(error["input"]) if isinstance(error["input"], str | int | float) else ""
            problems.append(f"WEBHOOKD_{field.upper()}={shown}: {error['msg']}")
        raise StartupError("invalid setting " + "; ".join(problems), code=2) from None


def check_database(settings: Settings, timeout: float = 10.0) -> None:
    """The database answers, or a sentence that says where it was looked for."""
    path = settings.sqlite_path()
    if path is not None and not _writable_dir(path.parent):
        raise StartupError(f"cannot create the database {path}: its directory is not writable")

    async def ping() -> None:
        db = Database(settings)
        try:
            async with asyncio.timeout(timeout):
                await db.ping()
        finally:
            await db.dispose()

    try:
        asyncio.run(ping())
    except TimeoutError:
        raise StartupError(
            f"cannot reach the database at {settings.database_shown}: no answer within "
            f"{timeout:g} s"
        ) from None
    except Exception as exc:
        reason = _reason(exc)
        raise StartupError(
            f"cannot reach the database at {settings.database_shown}: {reason}"
        ) from None


def _writable_dir(directory: Path) -> bool:
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
    return directory.is_dir() and os.access(directory, os.W_OK)


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a connection failure."""
    current: BaseException | None = exc
    seen = set()
    last = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        last = current
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    text = str(last).strip().splitlines()[0] if str(last).strip() else type(last).__name__
    return mask_password(text)


def check_port_free(host: str, port: int, what: str = "port") -> None:
    """The port can be bound (checked by binding it, then letting it go)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"{what} {port} on {host} is already in use (another webhookd, or another "
                    "program, listens there)"
                ) from None
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def free_port_from(host: str, port: int, tries: int = 100) -> int:
    """The first port from ``port`` on that can be bound."""
    for candidate in range(port, min(port + tries, 65536)):
        with contextlib.suppress(StartupError):
            check_port_free(host, candidate)
            return candidate
    raise StartupError(f"no free port on {host} from {port} to {port + tries - 1}")


def check_broker(settings: Settings, timeout: float = 10.0) -> None:
    """The broker answers (a worker without it would wait forever)."""
    from kombu import Connection

    url = settings.broker_url or ""
    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=int(timeout))
    except Exception as exc:
        raise StartupError(
            f"cannot reach the broker at {mask_password(url)}: {_reason(exc)}"
        ) from None


@contextlib.contextmanager
def operator_errors() -> Iterator[None]:
    """Turn a StartupError (or a SystemExit with a message) into one line on stderr and an
    exit status."""
    try:
        yield
    except StartupError as exc:
        print(f"webhookd: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.code) from None
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(f"webhookd: {exc.code}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        raise
