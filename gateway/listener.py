"""The proxy listener's connections: how long a client may take, how many may be open,
and the answer to a request aiohttp's HTTP parser refuses.

aiohttp's ``RequestHandler`` has a single timer (keep-alive, an hour by default),
and it answers a parse error with a plain-text 400 that echoes the offending line,
logging a traceback. ``Connection`` keeps one timer per connection for the phase
the connection is in:

    head   from the connection's start (or a kept-alive connection's first new
           byte) to the end of the request head: ``header_read_ms``  -> 408, closed
    body   from the end of the head until the whole body is in:
           ``body_read_ms``                                         -> closed
    busy   a request is being answered: no limit here (the pipeline's deadlines)
    idle   after a response, until the next request's first byte:
           ``keepalive_idle_ms``                                    -> closed

``ProxyServer`` answers a connection past ``max_connections`` with a 503 the moment
it is accepted and closes it: the listener never stops accepting. A request the
parser refuses gets the gateway's own problem+json 400 with a request id and a
reason in general terms, never a byte the client sent. Every close the gateway
decides is one log line (``connection_closed`` with its reason; ``request_refused``
for a parse error) and a count (``strangler_connections_closed_total{reason}``).
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import HttpVersion10, HttpVersion11, web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from gateway import log
from gateway.errors import BadRequest, GatewayError
from gateway.headers import request_id
from gateway.metrics import Metrics
from gateway.pipeline import problem
from gateway.settings import Limits

_log = log.get("listener")

_HEAD, _BODY, _BUSY, _IDLE = range(4)
_VERSIONS = (HttpVersion10, HttpVersion11)
_FD_RESERVE = 512
"""Descriptors kept for everything but client connections: backend pools, Redis, files."""
_BACKSTOP_S = 3_600 + 700
"""aiohttp's own keep-alive timer, left as a backstop past every limit of ours."""


@dataclass(frozen=True)
class ConnectionLimits:
    header_read_s: float = 10.0
    keepalive_idle_s: float = 60.0
    body_read_s: float = 60.0
    max_connections: int = 4096


def connection_limits(limits: Limits) -> ConnectionLimits:
    """``gateway.limits`` as seconds, with ``max_connections`` fitted to the open-file
    limit: the soft limit is raised to the hard one when it is too low, and if even
    that is short the cap is lowered (and a warning names the key) -- past the limit
    ``accept`` would fail and the listener stall."""
    wanted = limits.max_connections + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            _log.info("open_file_limit_raised", was=soft, now=raised)
            soft = raised
        except (ValueError, OSError) as exc:
            _log.warning("open_file_limit_not_raised", soft=soft, hard=hard, reason=str(exc))
    cap = limits.max_connections
    if soft != resource.RLIM_INFINITY and soft < wanted:
        cap = max(soft - _FD_RESERVE, 16)
        _log.warning("max_connections_lowered", key="gateway.limits.max_connections",
                     configured=limits.max_connections, now=cap, open_file_limit=soft,
                     reason="the open-file limit (ulimit -n) is too low; raise it or the key")
    return ConnectionLimits(limits.header_read_ms / 1000, limits.keepalive_idle_ms / 1000,
                            limits.body_read_ms / 1000, cap)


class ProxyServer(web.Server):
    """``web.Server`` whose connections are ``Connection``s, counted against a cap.

    ``limits`` may be replaced at any time (a reload): each connection reads it when
    it enters a phase."""

    def __init__(self, handler: Any, limits: ConnectionLimits, metrics: Metrics,
                 **kwargs: Any) -> None:
        super().__init__(handler, keepalive_timeout=_BACKSTOP_S, **kwargs)
        self.limits = limits
        self.open = 0
        self._closed = metrics.connections_closed
        metrics.connections_open.set_function(lambda: self.open)

    def __call__(self) -> Connection:
        return Connection(self, loop=self._loop, **self._kwargs)

    def closed(self, reason: str) -> None:
        self._closed.labels(reason).inc()


class Connection(RequestHandler):
    """One client connection: its phase, its one timer, its parse-error answer."""

    __slots__ = (
        "_counted",
        "_deadline",
        "_early",
        "_got_bytes",
        "_payload",
        "_phase",
        "_server",
        "_timer",
        "closed_reason",
        "rid",
    )

    def __init__(self, manager: ProxyServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._server = manager
        self._phase = _HEAD
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._got_bytes = False
        self._early = False
        """Bytes of a next request arrived while this one was being answered."""
        self._payload: StreamReader | None = None
        self._counted = False
        self.rid: str | None = None
        """The request id of the request in flight (set by the gateway's handler)."""
        self.closed_reason: str | None = None
        """Why the gateway closed this connection, once it has."""

    # ------------------------------------------------------------ lifecycle
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._server
        if server.open >= server.limits.max_connections:
            self._refuse(transport)  # type: ignore[arg-type]
            return
        server.open += 1
        self._counted = True
        super().connection_made(transport)
        self._enter(_HEAD, server.limits.header_read_s)

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._counted:
            return  # refused at once: aiohttp never knew this connection
        self._counted = False
        self._server.open -= 1
        self._phase = _BUSY
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._counted:
            return
        phase = self._phase
        if data:
            if phase == _IDLE:
                self._enter(_HEAD, self._server.limits.header_read_s)
                phase = _HEAD
            self._got_bytes = True
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._screen_versions(self._request_count - before)
            if phase == _BODY and isinstance(self._messages[-1][0], _ErrInfo):
                self._bad_body(self._messages[-1][0])
                return
        if phase == _HEAD and self._request_count != before:
            self._after_head(self._messages[-1][1] if self._messages else None)
        elif phase == _BODY and self._payload is not None and self._payload.is_eof():
            self._phase, self._payload = _BUSY, None
        elif phase == _BUSY and data and self._request_count == before:
            self._early = True

    def _screen_versions(self, new: int) -> None:
        """Only HTTP/1.0 and 1.1 are served: the parser takes ``GET /x`` (HTTP/0.9) too,
        and the answer's status line would say 0.9. Such a message becomes a parse error."""
        queue = self._messages
        for i in range(len(queue) - new, len(queue)):
            message = queue[i][0]
            if not isinstance(message, _ErrInfo) and message.version not in _VERSIONS:
                exc = BadStatusLine(error="unsupported HTTP version")
                queue[i] = (_ErrInfo(status=400, exc=exc, message=exc.message), EMPTY_PAYLOAD)

    def _bad_body(self, error: _ErrInfo) -> None:
        """The body of the request in flight is malformed (a bad chunk after a good head):
        aiohttp queues the error behind that request, whose body would then never end.
        The request is answered here, under its own request id, and the connection closed."""
        rid = self.rid or request_id(None)
        detail = self._describe(error.exc) if isinstance(error.exc, HttpProcessingError) \
            else "malformed request"
        _log.info("request_refused", request_id=rid, status=400, code=BadRequest.code,
                  detail=detail)
        self.closed_reason = "bad_request"
        self._server.closed("bad_request")
        request = self._current_request
        if self.transport is not None and (request is None or request.writer.output_size == 0):
            self.transport.write(_raw_problem(400, BadRequest.code, detail, rid))
        self.force_close()

    def _after_head(self, payload: StreamReader | None) -> None:
        if payload is not None and not payload.is_eof():
            self._payload = payload
            self._enter(_BODY, self._server.limits.body_read_s)
        else:
            self._phase = _BUSY

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        self.rid = None
        if self._messages:  # pipelined: the next head is in already
            self._after_head(self._messages[0][1])
        elif self._early:
            self._early = False
            self._got_bytes = True
            self._enter(_HEAD, self._server.limits.header_read_s)
        else:
            self._got_bytes = False
            self._enter(_IDLE, self._server.limits.keepalive_idle_s)
        return result

    # ------------------------------------------------------------ the timer
    def _enter(self, phase: int, seconds: float) -> None:
        """One timer handle per connection: moved later lazily (it fires, sees the new
        deadline and re-arms), earlier by replacing it."""
        self._phase = phase
        deadline = self._loop.time() + seconds
        self._deadline = deadline
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        phase = self._phase
        if phase == _BUSY or self.transport is None:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._expire)
            return
        if phase == _BODY:
            if self._payload is None or self._payload.is_eof():
                self._phase = _BUSY
                return
            self._shut("body_timeout", self.rid)
        elif phase == _HEAD and self._got_bytes:
            rid = request_id(None)
            self._shut("header_timeout", rid)
            if self.transport is not None:
                self.transport.write(_raw_problem(408, "request_timeout",
                                                  "the request head took too long", rid))
        else:
            self._shut("idle", None)
        self.force_close()

    def _shut(self, reason: str, rid: str | None) -> None:
        self.closed_reason = reason
        self._server.closed(reason)
        limits = self._server.limits
        limit_s = {"body_timeout": limits.body_read_s, "header_timeout": limits.header_read_s,
                   "idle": limits.keepalive_idle_s if self._request_count
                   else limits.header_read_s}[reason]
        _log.info("connection_closed", reason=reason, request_id=rid, limit_s=limit_s,
                  requests=self._request_count)

    def _refuse(self, transport: asyncio.Transport) -> None:
        rid = request_id(None)
        self.closed_reason = "too_many_connections"
        self._server.closed("too_many_connections")
        _log.warning("connection_closed", reason="too_many_connections", request_id=rid,
                     max_connections=self._server.limits.max_connections)
        transport.write(_raw_problem(503, "unavailable", "too many connections", rid))
        transport.close()

    # ------------------------------------------------------------ parse errors
    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Our answer instead of aiohttp's: problem+json, a request id, one log line."""
        if request.writer.output_size > 0:
            raise ConnectionError("a response is under way; the connection is dropped")
        rid = request_id(None)
        err: GatewayError
        if isinstance(exc, HttpProcessingError):
            err = BadRequest(self._describe(exc))
            _log.info("request_refused", request_id=rid, status=err.status, code=err.code,
                      detail=err.detail)
            self.closed_reason = "bad_request"
            self._server.closed("bad_request")
        else:
            err = GatewayError("internal error")
            _log.error("unhandled_error", request_id=rid, status=status,
                       error=type(exc).__name__ if exc is not None else None)
        response = problem(err, rid)
        response.force_close()
        return response

    def _describe(self, exc: HttpProcessingError) -> str:
        """What was wrong, in general terms: never the client's bytes."""
        if isinstance(exc, LineTooLong):
            limit = exc.args[1] if len(exc.args) > 1 else None
            if limit == self.max_field_size != self.max_line_size:
                return "header too long"
            if limit == self.max_line_size != self.max_field_size:
                return "request line too long"
            return "request line or header too long"
        if isinstance(exc, BadHttpMethod):
            https = "https" in _gist(exc)
            return "TLS sent to a plain HTTP port" if https else "bad request method"
        for kind, text in _BY_CLASS:
            if isinstance(exc, kind):
                return text
        gist = _gist(exc)
        for words, text in _BY_WORDS:
            if words in gist:
                return text
        return "malformed request"


_BY_CLASS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (BadStatusLine, "bad request line"),
    (InvalidHeader, "invalid header line"),
    (InvalidURLError, "invalid request target"),
    (TransferEncodingError, "invalid chunked encoding"),
    (ContentLengthError, "invalid Content-Length"),
)
_BY_WORDS = (  # words of the parser's own description -> what the client is told
    ("chunk", "invalid chunked encoding"),
    ("content-length", "invalid Content-Length"),
    ("transfer-encoding", "invalid Transfer-Encoding"),
    ("pri/upgrade", "HTTP/2 is not served here"),
    ("method", "bad request method"),
    ("version", "bad HTTP version"),
    ("url", "invalid request target"),
    ("header", "invalid header line"),
    ("whitespace", "invalid header line"),
)


def _gist(exc: HttpProcessingError) -> str:
    """The parser's description without the quoted input that follows it: the text up
    to the first colon, newline or quote."""
    text = (exc.message or "").lower()
    for stop in (":", "\n", "'", '"'):
        text = text.split(stop, 1)[0]
    return text


def _raw_problem(status: int, code: str, detail: str, rid: str) -> bytes:
    """A whole problem+json response as bytes, for the answers given outside any request
    (too many connections, a head that never finished); the connection then closes."""
    body = orjson.dumps({"type": "about:blank", "title": code, "status": status,
                         "detail": detail, "request_id": rid})
    reason = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Request-Id: {rid}\r\n"
            + ("Retry-After: 1\r\n" if status == 503 else "") + "\r\n")
    return head.encode("ascii") + body
