"""Every error the gateway raises, in one tree.

    GatewayError                      -> problem+json with ``status``
    ├── BadRequest (400)              malformed or hostile request; nothing forwarded
    │   ├── BadPath                   path that cannot be made canonical
    │   ├── BadHeader                 smuggling shapes, bad internal syntax
    │   └── DuplicateSessionCookie    two session cookies, profile says ``reject``
    ├── PayloadTooLarge (413)
    ├── UriTooLong (414)
    ├── ExpectationFailed (417)       an ``Expect`` other than 100-continue
    ├── NotFound (404)                no route (only when no catch-all route exists)
    ├── MethodNotAllowed (405)        path matched, method did not (``allow`` lists them)
    ├── ServiceUnavailable (503)      nothing can serve: no healthy node, session busy
    │   └── NewUnavailable            a ``complete`` route, and new cannot serve it
    │                                 (store down, no instance, breaker open)
    └── UpstreamError (502)           a backend failed; ``kind`` says how
        ├── UpstreamConnectError      never reached it (refused, unreachable):
        │                             any request may be retried elsewhere
        ├── UpstreamTimeout (504)     no response in time: it may have acted
        ├── UpstreamReset             connection dropped before a full response
        └── UpstreamProtocolError     the backend answered garbage

Failures the gateway detects itself (connect, timeout, reset, protocol) are
kept apart from failures the backend reports (a 5xx response, which is a
response, not an exception). Lower-level aiohttp errors are translated only in
``forward.py``, with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "gateway_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.cookies: list[str] = []
        """Set-Cookie lines the refusal must still carry (a renewed sync token)."""


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class BadPath(BadRequest):
    code = "bad_path"


class BadHeader(BadRequest):
    code = "bad_header"


class DuplicateSessionCookie(BadRequest):
    """Two session cookies and a profile that says ``reject``: the answer expires them."""

    code = "duplicate_session_cookie"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class ExpectationFailed(GatewayError):
    status = 417
    code = "expectation_failed"


class UriTooLong(GatewayError):
    status = 414
    code = "uri_too_long"


class NotFound(GatewayError):
    status = 404
    code = "no_route"


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, detail: str, allow: tuple[str, ...]) -> None:
        super().__init__(detail)
        self.allow = allow


class ServiceUnavailable(GatewayError):
    status = 503
    code = "unavailable"


class NewUnavailable(ServiceUnavailable):
    """A ``complete`` route never falls back, and a guard says new cannot serve now.

    ``reason`` is the guard's (``breaker_open``...); ``steps`` every reason that led
    here, as ``Decision.steps`` gives them, ending with ``reason``.
    """

    def __init__(self, reason: str, steps: tuple[str, ...]) -> None:
        super().__init__(f"route is complete and new is unavailable ({reason})")
        self.reason = reason
        self.steps = steps


class UpstreamError(GatewayError):
    status = 502
    code = "bad_gateway"
    kind: ClassVar[str] = "error"


class UpstreamConnectError(UpstreamError):
    kind = "connect"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "gateway_timeout"
    kind = "timeout"


class UpstreamReset(UpstreamError):
    kind = "reset"


class UpstreamProtocolError(UpstreamError):
    kind = "protocol"
