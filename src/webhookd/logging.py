"""Structured JSON logs, one object per line on stdout.

Messages are constants (``delivery.succeeded``); context is bound (``delivery_id=...``).
Keys, secrets and signatures are never passed to a logger; ``redact`` drops them anyway.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from webhookd.db import database_unavailable

SENSITIVE_KEYS = frozenset(
    {"api_key", "secret_key", "secret", "admin_key", "signature", "authorization", "x-api-key"}
)


def redact(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in SENSITIVE_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


def _route_stdlib_logging(numeric: int) -> None:
    """Send the standard library's records (uvicorn, asyncio, ...) out as JSON lines too."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def configure_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    _route_stdlib_logging(max(numeric, logging.WARNING))  # libraries: warnings and up
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(file=sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )


def log_failure(logger: Any, event: str, exc: BaseException, **context: Any) -> None:
    """An outage is a warning without a traceback (it repeats while it lasts); anything
    else is logged with its traceback."""
    if database_unavailable(exc):
        logger.warning(event, database_unavailable=True, error=type(exc).__name__, **context)
    else:
        logger.exception(event, **context)
