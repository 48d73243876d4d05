"""Every error the gateway raises, in one tree.

    GatewayError                      -> problem+json with ``status``
    ├── BadRequest (400)              malformed or hostile request; nothing forwarded
    │   ├── BadPath                   path that cannot be made canonical
    │   ├── BadHeader                 smuggling shapes, bad internal syntax
    │   ├── BadHost                   a Host that is not a valid host[:port], or two
    │   ├── UnknownHost               a valid Host this listener does not serve
    │   └── DuplicateSessionCookie    two session cookies, profile says ``reject``
    ├── PayloadTooLarge (413)
    ├── UriTooLong (414)
    ├── ExpectationFailed (417)       an ``Expect`` other than 100-continue
    ├── NotFound (404)                no route (only when no catch-all route exists)
    │   └── PathBlocked               a path the gateway never forwards (blocked_paths)
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

    @property
    def public_detail(self) -> str:
        """What the client is told; ``detail`` goes to the log."""
        return self.detail


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class BadPath(BadRequest):
    code = "bad_path"


class BadHeader(BadRequest):
    code = "bad_header"


class BadHost(BadRequest):
    code = "bad_host"


class UnknownHost(BadRequest):
    code = "unknown_host"


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


class PathBlocked(NotFound):
    """``gateway.blocked_paths`` names this path (an internal one of the backends'): the
    client is told it is never forwarded; the log line and the metric name the pattern."""

    code = "blocked_path"

    def __init__(self, path: str, pattern: str) -> None:
        super().__init__(f"{path} matches blocked path {pattern}")
        self.pattern = pattern

    @property
    def public_detail(self) -> str:
        return "this path is never forwarded"


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

    @property
    def public_detail(self) -> str:
        """The detail names hosts and ports: that stays in the log."""
        return f"a backend failed ({self.kind})"


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
