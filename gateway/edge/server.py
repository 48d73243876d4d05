"""The public listener: HTTP/1.1 on asyncio protocols with llhttp (httptools).

aiohttp's server cost a quarter of the gateway's CPU per request (bench/RESULTS.md);
this one parses with the same llhttp, hands the pipeline an ``Incoming`` and
writes its ``Reply``, and does nothing else. Per connection:

    head   from the connection's start (or a kept-alive connection's first new
           byte) to the end of the request head: ``header_read_ms``  -> 408, closed
    body   from the end of the head until the whole body is in:
           ``body_read_ms``                                         -> closed
    busy   a request is being answered: no limit here (the pipeline's deadlines)
    idle   after a response, until the next request's first byte:
           ``keepalive_idle_ms``                                    -> closed

One timer handle per connection, moved lazily. A connection past
``max_connections`` is answered 503 the moment it is accepted and closed: the
listener never stops accepting. A request the parser refuses gets a problem+json
400 with a request id and a reason in general terms, never a byte the client
sent. Every close the gateway decides is one log line (``connection_closed`` with
its reason; ``request_refused`` for a parse error) and a count
(``strangler_connections_closed_total{reason}``).

Requests on one connection are answered in order (pipelining); one task per
connection runs them while any are queued. A client that goes away cancels the
request it is waiting for. Bodies stream both ways with back-pressure: reading
from the client pauses past 256 KiB unread, writing to it waits while its
socket buffer is full.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.edge.headers import request_id
from gateway.edge.http import Abort, Incoming, Reply, raw_problem
from gateway.errors import BadRequest
from gateway.observe import log
from gateway.observe.metrics import Metrics
from gateway.settings import Limits

_log = log.get("listener")

_HEAD, _BODY, _BUSY, _IDLE = range(4)
_FD_RESERVE = 512
"""Descriptors kept for everything but client connections: backend pools, Redis, files."""
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
_MAX_QUEUED = 16
"""Pipelined requests parsed ahead of the one being answered; past it, reading pauses."""
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

Handler = Callable[[Incoming, str, "Connection"], Awaitable[Reply]]
"""The pipeline's entry: the request, its id, its connection; never raises but for
a cancellation (the client went away)."""


@dataclass(frozen=True)
class ConnectionLimits:
    header_read_s: float = 10.0
    keepalive_idle_s: float = 60.0
    body_read_s: float = 60.0
    max_connections: int = 4096


@dataclass(frozen=True)
class ParseLimits:
    max_line: int = 8192 + 64
    """The request line (method, target, version)."""
    max_field: int = 8192
    """One header (name and value)."""
    max_headers: int = 100


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


def parse_limits(limits: Limits) -> ParseLimits:
    return ParseLimits(limits.max_url_bytes + 64, limits.max_header_bytes, limits.max_headers)


class ProxyServer:
    """The listener's connections, counted against a cap. ``limits`` may be replaced at
    any time (a reload): each connection reads it when it enters a phase."""

    def __init__(self, handler: Handler, limits: ConnectionLimits, parse: ParseLimits,
                 metrics: Metrics) -> None:
        self.handler = handler
        self.limits = limits
        self.parse = parse
        self.open = 0
        self.draining = False
        self.connections: set[Connection] = set()
        self._closed = metrics.connections_closed
        self._servers: list[asyncio.AbstractServer] = []
        self._date = ""
        self._date_at = 0
        metrics.connections_open.set_function(lambda: self.open)

    def __call__(self) -> Connection:
        return Connection(self)

    async def listen(self, host: str, port: int, *, reuse_port: bool = False,
                     backlog: int = 1024) -> None:
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(
            self, host, port, reuse_address=True, reuse_port=reuse_port, backlog=backlog))

    def closed(self, reason: str) -> None:
        self._closed.labels(reason).inc()

    def date_line(self) -> str:
        now = int(time.time())
        if now != self._date_at:
            self._date_at = now
            self._date = f"Date: {formatdate(now, usegmt=True)}\r\n"
        return self._date

    async def shutdown(self, within_s: float) -> int:
        """Stop accepting, close idle connections, let requests in flight finish (up to
        ``within_s``), then cut the rest. Returns how many were cut."""
        self.draining = True
        for server in self._servers:
            server.close()
        self._servers.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            busy = [c for c in self.connections if c.busy]
            for conn in self.connections - set(busy):
                conn.close()
            if not busy or loop.time() >= deadline:
                break
            await asyncio.sleep(0.02)
        busy = [c for c in self.connections if c.busy]
        for conn in list(self.connections):
            conn.abort()
        return len(busy)


class _Body:
    """A request body as it arrives (``gateway.edge.http.BodySource``)."""

    __slots__ = ("_chunks", "_conn", "_continue", "_size", "_waiter", "done", "error")

    def __init__(self, conn: Connection, expect_continue: bool) -> None:
        self._conn = conn
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._continue = expect_continue
        self.done = False
        self.error: BaseException | None = None

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER:
            self._conn.pause_reading()
        self._wake()

    def finish(self) -> None:
        self.done = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes:
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._size -= len(data)
                if self._size <= _LOW_WATER:
                    self._conn.resume_reading()
                return data
            if self.done:
                return b""
            if self.error is not None:
                raise self.error
            self._waiter = self._conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def send_continue(self) -> None:
        if self._continue:
            self._continue = False
            self._conn.write_raw(_CONTINUE)


class _Message:
    __slots__ = ("body", "incoming", "keep")

    def __init__(self, incoming: Incoming, keep: bool, body: _Body | None) -> None:
        self.incoming = incoming
        self.keep = keep
        self.body = body


class _Refused(Exception):
    """Raised from a parser callback: the head breaks one of our limits."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Connection(asyncio.Protocol):
    """One client connection: its parser, its queue of requests, its one timer."""

    def __init__(self, server: ProxyServer) -> None:
        self._server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: collections.deque[_Message] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._msg: _Message | None = None
        self._url: list[bytes] = []
        self._url_size = 0
        self._raw: list[tuple[bytes, bytes]] = []
        self._length: int | None = None
        self._chunked = False
        self._expect = False
        self._peer = ""
        self._phase = _HEAD
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._got_bytes = False
        self._early = False
        self._requests = 0
        self._counted = False
        self._lost = False
        self._paused = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._started = False
        """Bytes of the answer to the request at the head of the queue have been written."""
        self._pending_error: str | None = None
        self.rid: str | None = None
        """The request id of the request being answered."""
        self.closed_reason: str | None = None
        """Why the gateway closed this connection, once it has."""

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    # ------------------------------------------------------------ lifecycle
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self._server
        if server.open >= server.limits.max_connections:
            self._refuse()
            return
        server.open += 1
        server.connections.add(self)
        self._counted = True
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else ""
        self._enter(_HEAD, server.limits.header_read_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._counted:
            return
        self._counted = False
        self._server.open -= 1
        self._server.connections.discard(self)
        if self._task is not None:
            self._task.cancel()  # nobody is waiting for the answer any more
        gone = ConnectionResetError("the client closed the connection")
        for message in self._queue:
            if message.body is not None:
                message.body.fail(gone)  # after the cancel: the reader sees that first
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def close(self) -> None:
        if self.transport is not None and not self._lost:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self._lost:
            self.transport.abort()

    def pause_reading(self) -> None:
        if not self._paused and self.transport is not None and not self._lost:
            self._paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._paused and len(self._queue) < _MAX_QUEUED and self._pending_error is None \
                and self.transport is not None and not self._lost:
            self._paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self._lost:
            self.transport.write(data)

    # ------------------------------------------------------------ parsing
    def data_received(self, data: bytes) -> None:
        if not self._counted or self.closed_reason is not None:
            return
        if self._phase == _IDLE:
            self._enter(_HEAD, self._server.limits.header_read_s)
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data, int(exc.args[0]) if exc.args else len(data))
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._failed(cause.detail if isinstance(cause, _Refused) else "malformed request")
        except httptools.HttpParserError as exc:
            self._failed(describe(exc, data))

    def _upgraded(self, data: bytes, offset: int) -> None:
        """An ``Upgrade`` or ``CONNECT`` head: answered as a plain request (the gateway
        relays no other protocol and strips ``Upgrade``). After CONNECT the bytes
        are a tunnel's, so the connection ends with the answer; after an upgrade
        offer it goes on as HTTP/1.1 (the offer was declined)."""
        message = self._queue[-1] if self._queue else None
        if message is None or message.incoming.method == "CONNECT":
            if message is not None:
                message.keep = False
            self.pause_reading()
            return
        self._parser = httptools.HttpRequestParser(self)
        if offset < len(data):
            self.data_received(data[offset:])

    def on_message_begin(self) -> None:
        self._url = []
        self._url_size = 0
        self._raw = []
        self._length = None
        self._chunked = False
        self._expect = False
        if self._queue:
            self._early = True  # the next head, while an answer is under way

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._url_size += len(url)
        if self._url_size + 16 > self._server.parse.max_line:
            raise _Refused("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        raw = self._raw
        limits = self._server.parse
        if len(name) + len(value) + 2 > limits.max_field:
            raise _Refused("header too long")
        if len(raw) >= limits.max_headers:
            raise _Refused("too many headers")
        raw.append((name, value))
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self._length = int(value)
        elif size == 17 and name.lower() == b"transfer-encoding":
            self._chunked = True
        elif size == 6 and name.lower() == b"expect":
            self._expect = True

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version == "1.1":
            pair = (1, 1)
        elif version == "1.0":
            pair = (1, 0)
        else:  # HTTP/0.9 (``GET /x``) parses, but its answer would say 0.9
            raise _Refused("bad request line")
        headers = CIMultiDictProxy(CIMultiDict([
            (n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for n, v in self._raw]))
        url = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        has_body = self._chunked or bool(self._length)
        body = _Body(self, self._expect and pair == (1, 1)) if has_body else None
        incoming = Incoming(parser.get_method().decode("ascii", "replace"),
                            url.decode("utf-8", "surrogateescape"), pair, headers, self._peer,
                            "http", self._length, self._chunked, body)
        message = self._msg = _Message(incoming, parser.should_keep_alive(), body)
        self._queue.append(message)
        self._requests += 1
        if len(self._queue) >= _MAX_QUEUED:
            self.pause_reading()
        if body is not None:
            self._enter(_BODY, self._server.limits.body_read_s)
        elif len(self._queue) == 1 or self._phase == _HEAD:
            self._phase = _BUSY
        if self._task is None:
            self._task = self.loop.create_task(self._serve())

    def on_body(self, data: bytes) -> None:
        message = self._msg
        if message is not None and message.body is not None:
            message.body.feed(data)

    def on_message_complete(self) -> None:
        message = self._msg
        self._msg = None
        if message is not None and message.body is not None:
            message.body.finish()
            if self._phase == _BODY:
                self._phase = _BUSY

    def _failed(self, detail: str) -> None:
        """The parser refused what came. A body of the request being answered gone bad
        ends that request here, under its own id; a bad head behind answers in flight
        is answered after them; otherwise it is answered now. The connection closes."""
        message = self._msg
        if message is not None and self._queue and message is self._queue[0]:
            rid = self.rid or request_id(None)
            _log.info("request_refused", request_id=rid, status=400, code=BadRequest.code,
                      detail=detail)
            self._shut_for("bad_request")
            if not self._started:
                self.write_raw(raw_problem(400, BadRequest.code, detail, rid))
            self.close()
            return
        self.pause_reading()
        if self._queue:
            self._pending_error = detail  # answered once the answers before it are out
            return
        self._bad_request(detail)

    def _bad_request(self, detail: str) -> None:
        rid = request_id(None)
        _log.info("request_refused", request_id=rid, status=400, code=BadRequest.code,
                  detail=detail)
        self._shut_for("bad_request")
        self.write_raw(raw_problem(400, BadRequest.code, detail, rid))
        self.close()

    # ------------------------------------------------------------ answering
    async def _serve(self) -> None:
        server = self._server
        try:
            while self._queue and self.closed_reason is None:
                message = self._queue[0]
                incoming = message.incoming
                self.rid = rid = request_id(incoming.headers.get("X-Request-Id"))
                self._started = False
                reply = await server.handler(incoming, rid, self)
                keep = message.keep and not reply.close and not server.draining
                body = message.body
                if body is not None and not body.done:
                    keep = False  # an unread body: the framing of what follows is unknown
                try:
                    keep = await self._write(incoming, reply, keep)
                except ConnectionError:
                    return
                except Exception:
                    _log.exception("unhandled_error", request_id=rid)
                    self.abort()
                    return
                self._queue.popleft()
                self.rid = None
                if not keep:
                    self.close()
                    return
                self._answered()
            if self._pending_error is not None and not self._queue:
                self._bad_request(self._pending_error)
        finally:
            self._task = None

    def _answered(self) -> None:
        """An answer is out: the next phase."""
        self.resume_reading()
        if self._queue:
            self._phase = _BODY if self._msg is self._queue[0] else _BUSY
            if self._phase == _BODY:
                self._enter(_BODY, self._server.limits.body_read_s)
        elif self._early or self._msg is not None:
            self._early = False
            self._got_bytes = True
            self._enter(_HEAD, self._server.limits.header_read_s)
        else:
            self._got_bytes = False
            self._enter(_IDLE, self._server.limits.keepalive_idle_s)

    async def _write(self, incoming: Incoming, reply: Reply, keep: bool) -> bool:
        """Write the answer; returns whether the connection may carry another request."""
        status = reply.status
        headers = reply.headers
        lines = [_status_line(status)]
        lines.extend([f"{name}: {value}\r\n" for name, value in headers.items()])
        if "Date" not in headers:
            lines.append(self._server.date_line())
        bodiless = status < 200 or status in (204, 304)
        head_only = incoming.method == "HEAD"
        stream = reply.stream
        chunked = False
        if stream is None:
            if not bodiless:
                length = reply.length if head_only and reply.length is not None \
                    else len(reply.body)
                lines.append(f"Content-Length: {length}\r\n")
        elif reply.length is not None:
            lines.append(f"Content-Length: {reply.length}\r\n")
        elif incoming.version == (1, 1):
            lines.append("Transfer-Encoding: chunked\r\n")
            chunked = True
        else:
            keep = False  # HTTP/1.0 and no length: the end of the connection ends the body
        if incoming.version == (1, 1):
            if not keep:
                lines.append("Connection: close\r\n")
        elif keep:
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        if text.count("\n") != len(lines) or text.count("\r") != len(lines):
            raise RuntimeError("a response header holds a line break")
        head = text.encode("utf-8", "surrogateescape")
        transport = self.transport
        if transport is None or self._lost:
            raise ConnectionResetError("the client went away")
        self._started = True
        if stream is None:
            if head_only or bodiless or not reply.body:
                transport.write(head)
            else:
                transport.write(head + reply.body)
            return keep
        try:
            transport.write(head)
            async for chunk in stream:
                if not chunk:
                    continue
                if self._lost:
                    raise ConnectionResetError("the client went away")
                if chunked:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                else:
                    transport.write(chunk)
                if self._write_paused:
                    await self._drained()
            if chunked:
                transport.write(b"0\r\n\r\n")
        except Abort:
            self.closed_reason = self.closed_reason or "upstream_failed"
            self.abort()
            return False
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        return keep

    async def _drained(self) -> None:
        while self._write_paused and not self._lost:
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self._lost:
            raise ConnectionResetError("the client went away")

    # ------------------------------------------------------------ the timer
    def _enter(self, phase: int, seconds: float) -> None:
        """One timer handle per connection: moved later lazily (it fires, sees the new
        deadline and re-arms), earlier by replacing it."""
        self._phase = phase
        deadline = self.loop.time() + seconds
        self._deadline = deadline
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._timer = self.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        phase = self._phase
        if phase == _BUSY or self._lost or self.closed_reason is not None:
            return
        if self.loop.time() < self._deadline:
            self._timer = self.loop.call_at(self._deadline, self._expire)
            return
        if phase == _BODY:
            message = self._msg  # the request whose body is arriving
            if message is None or message.body is None or message.body.done:
                self._phase = _BUSY
                return
            self._shut("body_timeout", self.rid)
        elif phase == _HEAD and self._got_bytes:
            rid = request_id(None)
            self._shut("header_timeout", rid)
            self.write_raw(raw_problem(408, "request_timeout",
                                       "the request head took too long", rid))
        elif self._queue:
            return  # answering: the pipeline's deadlines bound it
        else:
            self._shut("idle", None)
        self.close()

    def _shut_for(self, reason: str) -> None:
        self.closed_reason = reason
        self._server.closed(reason)

    def _shut(self, reason: str, rid: str | None) -> None:
        self._shut_for(reason)
        limits = self._server.limits
        limit_s = {"body_timeout": limits.body_read_s, "header_timeout": limits.header_read_s,
                   "idle": limits.keepalive_idle_s if self._requests
                   else limits.header_read_s}[reason]
        _log.info("connection_closed", reason=reason, request_id=rid, limit_s=limit_s,
                  requests=self._requests)

    def _refuse(self) -> None:
        rid = request_id(None)
        self._shut_for("too_many_connections")
        _log.warning("connection_closed", reason="too_many_connections", request_id=rid,
                     max_connections=self._server.limits.max_connections)
        assert self.transport is not None
        self.transport.write(raw_problem(503, "unavailable", "too many connections", rid))
        self.transport.close()


_STATUS_LINES: dict[int, str] = {}


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {phrase}\r\n"
    return line


# ---------------------------------------------------------------- parse errors
_BY_WORDS = (  # words of llhttp's own description -> what the client is told
    ("http version", "bad request line"),
    ("chunk", "invalid chunked encoding"),
    ("content-length", "invalid Content-Length"),
    ("transfer-encoding", "invalid Transfer-Encoding"),
    ("pri/upgrade", "HTTP/2 is not served here"),
    ("method", "bad request method"),
    ("url", "invalid request target"),
    ("header", "invalid header line"),
    ("whitespace", "invalid header line"),
    ("version", "bad HTTP version"),
)


def describe(exc: httptools.HttpParserError, data: bytes = b"") -> str:
    """What was wrong, in general terms: never the client's bytes (llhttp's reasons
    hold none; they are matched by their words all the same)."""
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        return "TLS sent to a plain HTTP port" if data[:2] == b"\x16\x03" \
            else "bad request method"
    if isinstance(exc, httptools.HttpParserInvalidURLError):
        return "invalid request target"
    text = (str(exc.args[0]) if exc.args else "").lower()
    for stop in (":", "\n", "'", '"'):
        text = text.split(stop, 1)[0]
    for words, told in _BY_WORDS:
        if words in text:
            return told
    return "malformed request"
