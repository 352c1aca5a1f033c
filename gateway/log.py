"""Structured logging: JSON lines in production, readable console output in development.

Event names are stable snake_case verbs (`call_attributed`, `swap_served`); context such as
request, call, session and site ids is bound with contextvars. A redaction processor drops the
values of keys that could carry secrets, so a careless `log.info(..., token=x)` cannot leak one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

REDACTED_KEYS = frozenset(
    {"authorization", "admin_key", "api_key", "auth_token", "password", "secret", "signature",
     "token", "cookie", "x-twilio-signature", "x-signalwire-signature"}
)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in REDACTED_KEYS:
            event[key] = "[redacted]"
    return event


_PROCESS_FIELDS: dict[str, Any] = {}  # on every line of this process (the worker id)


def bind_process(**fields: Any) -> None:
    """Add fields to every log line this process writes from now on (scale-out: `worker`)."""
    _PROCESS_FIELDS.update(fields)


def _process_fields(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in _PROCESS_FIELDS.items():
        event.setdefault(key, value)
    return event


def configure(fmt: str = "console", level: str = "info") -> None:
    """Configure structlog once for the process (idempotent). Libraries that log through the
    standard `logging` module (asyncpg, aiohttp) are rendered the same way, one line each."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _process_fields,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    _route_stdlib(shared, renderer, level)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def _route_stdlib(shared: list[Any], renderer: Any, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])


def get(name: str | None = None) -> Any:
    return structlog.get_logger(name)
