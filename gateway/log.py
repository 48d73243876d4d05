"""structlog, configured once: JSON lines with ``request_id`` and ``route``.

Event names are fixed snake_case (``backend_decided``, ``fallback_taken``,
``session_pushed``, ``session_pulled``, ``breaker_opened``...). Cookies and
tokens are never logged.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

_configured = False


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Idempotent; the level applies to every structlog logger of the process."""
    global _configured
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=True,
    )
    if not _configured:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _configured = True


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
