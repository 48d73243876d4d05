"""The errors a handler raises; ``middleware.errors`` turns them into JSON answers.

::

    ApiError                  a documented shop API error (adapters.contracts.ERRORS)
    ServiceError              our own failure, not part of the shop contract
     +-- Unavailable          Redis or the database did not answer; nothing was
     |                        written (503 + Retry-After)
     +-- SessionBusy          compare-and-set kept losing; nothing written (503)
     +-- OutcomeUnknown       a write got no answer within its budget: it may yet
     |                        apply (500, never 503)
     +-- ShadowWriteRefused   a shadow copy tried to change state (409)

Lower-level errors (redis, SQLAlchemy) are translated at the boundary, in the
middleware, never inside handlers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.contracts import error, error_for


class ApiError(Exception):
    """A shop API error whose status and detail come from ``adapters.contracts.ERRORS``."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.status, self.body = error_for(code)
        super().__init__(code)


def not_logged_in() -> ApiError:
    return ApiError("not_logged_in")


class ServiceError(Exception):
    """A failure of this service itself; the code is ours, not the shop contract's."""

    status = 500
    code = "internal_error"
    detail = "the service failed to answer"
    retry_after: str | None = None
    """A 503 says when to try again: nothing was done, the same request is safe."""

    @property
    def body(self) -> dict[str, Any]:
        return error(self.code, self.detail)


class Unavailable(ServiceError):
    status = 503
    code = "unavailable"
    detail = "a backing store did not answer; nothing was changed; try again"
    retry_after = "1"


class SessionBusy(ServiceError):
    status = 503
    code = "session_busy"
    detail = "the session kept changing while we wrote it; nothing was changed; try again"
    retry_after = "1"


class OutcomeUnknown(ServiceError):
    status = 500
    code = "outcome_unknown"
    detail = ("the session store did not answer in time; the change may or may not have "
              "been made: read it back before trying again")


class ShadowWriteRefused(ServiceError):
    status = 409
    code = "shadow_write_refused"
    detail = "a shadow copy of a request must not change state"


def json_error(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)
