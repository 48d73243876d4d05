"""structlog, configured once per process: JSON lines on stdout.

Every line of a request carries its ``request_id`` (the gateway's
``X-Request-Id`` when it sent a sane one) and the node id. Cookies, passwords,
tokens and raw session ids are never logged; sessions appear as fingerprints.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import TextIO

import structlog
from aiohttp import web

from legacy_shop.state import SETTINGS
from legacy_shop.web_util import Handler

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

log = structlog.get_logger(__name__)


def configure_logging(level: str = "info", *, stream: TextIO | None = None,
                      cache: bool = True) -> None:
    """JSON lines to ``stream`` (stdout). Call once, at process start (the CLI does)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks as data, but without local variables: those would
            # include request bodies, i.e. passwords.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=cache,
    )


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is a sane token, else a new one (never echo junk)."""
    if header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def loggable_path(request: web.Request) -> str:
    """The path, except that a session id in it (internal endpoints) stays out of the log."""
    if "sid" not in request.match_info:
        return request.path
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(redacted)"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind ``request_id`` for every log line of the request, echo it, log the outcome."""
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    started = time.perf_counter()
    node = request.app[SETTINGS].node_id
    with structlog.contextvars.bound_contextvars(request_id=request_id, node=node):
        status = 500
        try:
            response = await handler(request)
            status = response.status
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = request_id
            raise
        finally:
            log.info("request_finished", method=request.method, path=loggable_path(request),
                     status=status, duration_ms=round((time.perf_counter() - started) * 1e3, 2))
