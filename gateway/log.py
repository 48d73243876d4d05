"""structlog, configured once: JSON lines with ``request_id`` and ``route``.

Event names are fixed snake_case (``backend_decided``, ``fallback_taken``,
``session_pushed``, ``session_pulled``, ``breaker_opened``...). Cookies and
tokens are never logged.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog

_configured = False


class _StdStream:
    """``sys.stdout`` or ``sys.stderr`` as bytes, looked up at each write (pytest and
    tools swap them)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, data: bytes) -> None:
        getattr(sys, self.name).buffer.write(data)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def _bytes_of(stream: TextIO | None) -> object:
    if stream is None or stream is sys.stdout:
        return _StdStream("stdout")
    if stream is sys.stderr:
        return _StdStream("stderr")
    return stream.buffer


def configure(level: str = "info", stream: TextIO | None = None,
              static: dict[str, object] | None = None) -> None:
    """Idempotent; the level applies to every structlog logger of the process.
    ``static``: fields on every line (a worker's index)."""
    global _configured
    numeric = logging.getLevelNamesMapping()[level.upper()]
    fields = dict(static or {})

    def add_static(_: object, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    structlog.configure(
        processors=[
            *([add_static] if fields else []),
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            # orjson: the per-request line is on the hot path; it renders several
            # times faster than the stdlib encoder, straight to bytes.
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(file=_bytes_of(stream)),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    if not _configured:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _configured = True


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
