"""Middlewares, outermost first: request context, then the SDK's (error translation,
shadow guard, the per-request caller; ``strangler_sdk.aiohttp``).

``request_context`` binds the request id for every log line of the request.
Each route checks its own service's token (``identity.require_login``): one
app serves several services, each with its own ``aud``.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from adapters.wire import REQUEST_ID_HEADER
from strangler_sdk.aiohttp import middlewares

from .errors import ERROR_TEXTS

log = structlog.get_logger("new_services.http")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    # A client-chosen id goes into our logs only if it cannot forge a log line.
    request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    response = await handler(request)
    response.headers[REQUEST_ID_HEADER] = request_id
    log.info("request_served", method=request.method, path=request.path,
             status=response.status, ms=round((time.perf_counter() - started) * 1000, 2))
    return response


MIDDLEWARES = (request_context, *middlewares(details=ERROR_TEXTS))
