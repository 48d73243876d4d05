"""The errors the SDK raises; each that a client may see carries its HTTP answer.

::

    HttpError                  status, code, detail (+ Retry-After): a JSON answer
     +-- NotLoggedIn           401: no valid token, or no session for it
     +-- BadRequest            400: the input (or a write it asks for) breaks the rules
     +-- IdempotencyKeyReused  422: the key came with another request
     +-- ShadowWriteRefused    409: a shadow copy tried to change state
     +-- Unavailable           503: Redis or the database did not answer; nothing written
     +-- SessionBusy           503: compare-and-set kept losing; nothing written
     +-- OutcomeUnknown        500: a write got no answer within its budget: it may apply
    InvalidToken               the identity header is no token we accept (a 401 at the edge)
     +-- UnknownKey            its ``kid`` is not in the key set (yet): refresh and retry

Lower-level errors (redis, SQLAlchemy) are translated at the boundary (the
``strangler_sdk.aiohttp`` middleware), never inside handlers.
"""

from __future__ import annotations

from typing import Any


class HttpError(Exception):
    """An error with its JSON answer ``{"error": code, "detail": detail}``."""

    status = 500
    code = "internal_error"
    detail = "the service failed to answer"
    retry_after: str | None = None
    """Set on a 503: nothing was done, the same request may be sent again."""

    def __init__(self, detail: str | None = None) -> None:
        if detail is not None:
            self.detail = detail
        super().__init__(self.detail)

    @property
    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": self.detail}


class NotLoggedIn(HttpError):
    status = 401
    code = "not_logged_in"
    detail = "log in first"


class BadRequest(HttpError):
    status = 400
    code = "bad_request"
    detail = "the request is not valid JSON of the expected shape"


class IdempotencyKeyReused(HttpError):
    status = 422
    code = "idempotency_key_reused"
    detail = "this Idempotency-Key was used with a different request"


class ShadowWriteRefused(HttpError):
    status = 409
    code = "shadow_write_refused"
    detail = "a shadow copy of a request must not change state"


class Unavailable(HttpError):
    status = 503
    code = "unavailable"
    detail = "a backing store did not answer; nothing was changed; try again"
    retry_after = "1"


class SessionBusy(HttpError):
    status = 503
    code = "session_busy"
    detail = "the session kept changing while we wrote it; nothing was changed; try again"
    retry_after = "1"


class OutcomeUnknown(HttpError):
    status = 500
    code = "outcome_unknown"
    detail = ("the session store did not answer in time; the change may or may not have "
              "been made: read it back before trying again")


class InvalidToken(Exception):
    """The identity header is present but is not a token we accept (always a 401)."""


class UnknownKey(InvalidToken):
    """The token names a ``kid`` this instance does not hold (yet): a rotation may have
    published it; refresh the key set and try once more."""
