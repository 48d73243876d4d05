"""Middlewares, outermost first: request context, error translation, shadow guard.

``request_context`` binds the request id for every log line of the request;
``errors`` is the one boundary where redis/SQLAlchemy failures become a 503 and
anything unexpected a 500 (handlers never catch them); ``shadow_guard`` makes
sure a shadow copy of a request cannot change state.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError

from adapters.contracts import error, error_for
from adapters.wire import REQUEST_ID_HEADER, SHADOW_HEADER

from .errors import ApiError, ServiceError, ShadowWriteRefused, Unavailable, json_error

log = structlog.get_logger("new_services.http")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SAFE_METHODS = frozenset({"GET", "HEAD"})
# Failures of a backing store, as opposed to bugs: the gateway may retry elsewhere.
_UNAVAILABLE = (RedisError, OperationalError, InterfaceError, OSError, asyncio.TimeoutError)


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


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.body)
    except ServiceError as exc:
        return _service_error(exc)
    except web.HTTPNotFound:
        return json_error(*error_for("not_found"))
    except web.HTTPException as exc:  # 405, 413...: same JSON shape as everything else
        return _http_error(exc)
    except _UNAVAILABLE as exc:
        log.warning("dependency_failed", error=type(exc).__name__)
        return _service_error(Unavailable())
    except Exception:
        log.exception("unhandled_error")
        return _service_error(ServiceError())


def _service_error(exc: ServiceError) -> web.Response:
    response = json_error(exc.status, exc.body)
    if exc.retry_after is not None:
        response.headers["Retry-After"] = exc.retry_after
    return response


def _http_error(exc: web.HTTPException) -> web.Response:
    code = exc.reason.lower().replace(" ", "_")
    response = json_error(exc.status, error(code, exc.reason))
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


@web.middleware
async def shadow_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if SHADOW_HEADER in request.headers and request.method not in _SAFE_METHODS:
        log.warning("shadow_write_refused", method=request.method, path=request.path)
        raise ShadowWriteRefused()
    return await handler(request)


MIDDLEWARES = (request_context, errors, shadow_guard)
