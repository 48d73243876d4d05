"""The shop API's errors and the middleware that renders them.

The strings below are the contract (``adapters.contracts.ERRORS`` states the
same; a unit test holds the two equal). The monolith spells them out itself
because it is the reference implementation and predates the migration.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from legacy_shop.web_util import Handler, json_response

log = structlog.get_logger(__name__)

ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "the request body is not valid JSON of the expected shape"),
    "invalid_credentials": (401, "unknown user or wrong password"),
    "not_logged_in": (401, "log in first"),
    "not_found": (404, "no such resource"),
    "product_not_found": (404, "no such product"),
    "cart_empty": (400, "the cart is empty"),
    "idempotency_key_reused": (422, "this Idempotency-Key was used with a different request"),
    "invalid_idempotency_key": (400, "Idempotency-Key must be 1-255 printable ASCII characters"),
}

INTERNAL_ERROR = {"error": "internal_error", "detail": "the server failed to handle the request"}


class ApiError(Exception):
    """An expected failure with a code from ``ERRORS``; becomes ``{"error", "detail"}``."""

    def __init__(self, code: str) -> None:
        if code not in ERRORS:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(code)
        self.code = code

    @property
    def status(self) -> int:
        return ERRORS[self.code][0]

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "detail": ERRORS[self.code][1]}


def error_response(code: str) -> web.Response:
    exc = ApiError(code)
    return json_response(exc.body(), status=exc.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``ApiError`` -> its JSON; unknown paths -> ``not_found``; anything else -> 500 JSON.

    Redirects and other deliberate HTTP exceptions pass through untouched.
    """
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.body(), status=exc.status)
    except web.HTTPNotFound:
        return error_response("not_found")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled_error", method=request.method, path=request.path)
        return json_response(INTERNAL_ERROR, status=500)
