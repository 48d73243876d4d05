"""The gateway's HTTP/1.1 client: asyncio protocols, llhttp parsing, keep-alive pools.

Every byte the gateway sends a backend goes through here: forwarded requests,
health checks, the session hook's calls, shadow copies. aiohttp's client was
43 % of the gateway's CPU per request (bench/RESULTS.md); this one does what a
proxy needs and nothing else: no cookie jar, no redirects, no decompression, no
default headers, headers passed byte for byte.

    HttpUpstream   one backend (``Upstream``): encodes the request, runs the exchange
                   on a pooled connection, hands back an ``UpstreamResult``
    Clients        the process's pools, one per backend URL, kept across reloads
    _Pool          idle keep-alive connections of one backend (last used first), a cap,
                   and the requests waiting for a slot
    _Conn          one connection: an ``asyncio.Protocol`` feeding httptools' parser

Deadlines, as before: a whole exchange (the request, the response head, a body
read whole) is bounded by ``read_s`` in total, so a backend dripping a small
answer cannot hold a request past it; each read of a body streamed on is bounded
by ``read_s``; a streamed upload is exempt from the total (a slow client is not
the backend's fault), its writes and the answer after it are bounded per wait.
One watcher (``gateway.upstream.deadlines``) serves every exchange: no timer per request.

Failures become ``gateway.errors`` here, once:

    cannot connect (refused, unreachable, no slot in connect_s) -> UpstreamConnectError
    no answer in time, a body that stalls                       -> UpstreamTimeout
    closed before the whole answer                              -> UpstreamReset
    an answer that is not HTTP/1.x                              -> UpstreamProtocolError

A kept-alive connection the backend closed just as it was reused is tried once
more on a fresh one for idempotent methods with a body in hand (what aiohttp and
Go's net/http do): the backend provably saw nothing it could act on twice.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import (
    GatewayError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.upstream import deadlines
from gateway.upstream.forward import Outgoing, UpstreamResult

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_WITH_CONTENT = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose empty body is still said (``Content-Length: 0``): servers wait for one."""
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
"""A streamed answer is buffered up to ``_HIGH_WATER``, then the backend waits (TCP
back-pressure) until the client has taken it down to ``_LOW_WATER``."""
_JOIN_LIMIT = 64 * 1024
"""A request body up to this size goes out in one write with its head."""
_NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class ClientLimits:
    connect_s: float = 1.0
    read_s: float = 15.0
    pool_size: int = 256
    """Connections per backend, in use or idle; a request past it waits up to ``connect_s``."""
    read_whole_bytes: int = 256 * 1024
    """An answer with a Content-Length up to this is read whole before it is relayed."""
    keepalive_s: float = 30.0
    """An idle connection older than this is closed rather than reused."""


class _StaleReset(UpstreamReset):
    """A reused connection closed before a byte of the answer: safe to try again."""


class HttpUpstream:
    """An ``Upstream`` at a base URL (``http://host:port``), on its backend's pool."""

    def __init__(self, upstream_id: str, base_url: str, clients: Clients,
                 limits: ClientLimits) -> None:
        self.id = upstream_id
        self.base_url = base_url.rstrip("/")
        self._pool = clients.pool(self.base_url, limits)
        self._host = self._pool.host_header
        self._read_s = limits.read_s
        self._whole = limits.read_whole_bytes

    async def send(self, request: Outgoing) -> UpstreamResult:
        body = request.body
        streamed = body is not None and not isinstance(body, bytes)
        head = self._head(request, streamed)
        retry = request.method in _IDEMPOTENT and not streamed
        while True:
            conn = await self._pool.acquire()
            try:
                return await self._exchange(conn, request, head, streamed)
            except _StaleReset:
                if not retry:
                    raise
                retry = False  # once, then on a fresh connection: the pool drops stale ones

    async def _exchange(self, conn: _Conn, request: Outgoing, head: bytes,
                        streamed: bool) -> UpstreamResult:
        pool = self._pool
        conn.begin(request.method == "HEAD")
        pool.deadlines.watch(conn)
        handed = False  # to a stream that now owns the connection
        try:
            if streamed:
                await conn.write_stream(head, request.body, request.length is not None,  # type: ignore[arg-type]
                                        self._read_s)
            else:
                conn.write(head, request.body)  # type: ignore[arg-type]
            conn.when = pool.loop.time() + self._read_s
            await conn.head()
            headers = CIMultiDictProxy(CIMultiDict(conn.headers()))
            length = conn.length
            if conn.done or (length is not None and length <= self._whole):
                return UpstreamResult(self.id, conn.status, headers, await conn.whole())
            conn.when = _NEVER  # from here each read is bounded (``_Conn.chunk``)
            handed = True
            return UpstreamResult(self.id, conn.status, headers, None,
                                  _Stream(conn, length, self._read_s, pool))
        finally:
            if not handed:
                pool.deadlines.unwatch(conn)
                pool.finish(conn)

    def _head(self, request: Outgoing, streamed: bool) -> bytes:
        """The request line and headers, as the backend will read them. Header values
        are the client's bytes (aiohttp decodes them as UTF-8 with surrogate escapes)."""
        headers = request.headers
        lines = [f"{request.method} {request.target} HTTP/1.1\r\n"]
        if "Host" not in headers:
            lines.append(self._host)
        lines.extend([f"{name}: {value}\r\n" for name, value in headers.items()])
        body = request.body
        if streamed:
            lines.append(f"Content-Length: {request.length}\r\n" if request.length is not None
                         else "Transfer-Encoding: chunked\r\n")
        elif body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")  # type: ignore[arg-type]
        elif request.method in _WITH_CONTENT:
            lines.append("Content-Length: 0\r\n")
        lines.append("\r\n")
        text = "".join(lines)
        # One line break per line: a value with CR or LF in it would be a header of its own.
        if text.count("\n") != len(lines) or text.count("\r") != len(lines):
            raise UpstreamProtocolError(f"{self.id}: a request header holds a line break")
        return text.encode("utf-8", "surrogateescape")


class _Stream:
    """A streamed answer (``forward.BodyStream``): its chunks as they come, then the
    connection goes back to its pool (or is closed, if the answer was cut short)."""

    __slots__ = ("_conn", "_pool", "_read_s", "content_length")

    def __init__(self, conn: _Conn, length: int | None, read_s: float, pool: _Pool) -> None:
        self._conn: _Conn | None = conn
        self._pool = pool
        self._read_s = read_s
        self.content_length = length

    async def read(self) -> bytes:
        conn = self._conn
        if conn is None:
            return b""
        chunk = await conn.chunk(self._read_s)
        if not chunk:
            self.release()
        return chunk

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.deadlines.unwatch(conn)
            self._pool.finish(conn)


class Clients:
    """The process's connection pools, one per backend URL: a reload that keeps a
    backend keeps its warm connections (with the new limits for new ones)."""

    def __init__(self) -> None:
        self._pools: dict[str, _Pool] = {}

    def pool(self, base_url: str, limits: ClientLimits) -> _Pool:
        pool = self._pools.get(base_url)
        if pool is None:
            pool = self._pools[base_url] = _Pool(base_url, limits)
        else:
            pool.limits = limits
        return pool

    def in_use(self) -> int:
        """Connections open or opening and not idle in a pool: an exchange holds them."""
        return sum(len(p.live) + p.connecting - len(p.idle) for p in self._pools.values())

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


class _Pool:
    """One backend's connections: idle ones (last used first), a cap on all of them."""

    def __init__(self, base_url: str, limits: ClientLimits) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.host_header = f"Host: {url.netloc}\r\n"
        self.ssl: ssl.SSLContext | None = (ssl.create_default_context()
                                           if url.scheme == "https" else None)
        self.limits = limits
        self.idle: list[_Conn] = []
        self.live: set[_Conn] = set()
        self.connecting = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: deadlines.Deadlines | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def deadlines(self) -> deadlines.Deadlines:
        if self._deadlines is None:
            self._deadlines = deadlines.of(self.loop)
        return self._deadlines

    async def acquire(self) -> _Conn:
        loop = self.loop
        deadline = None
        while True:
            idle = self.idle
            while idle:
                conn = idle.pop()
                if conn.usable and loop.time() - conn.idle_since < self.limits.keepalive_s:
                    return conn
                conn.close()
            if len(self.live) + self.connecting < self.limits.pool_size:
                return await self._connect()
            if deadline is None:
                deadline = loop.time() + self.limits.connect_s
            await self._wait_for_slot(deadline)

    async def _wait_for_slot(self, deadline: float) -> None:
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        try:
            async with deadlines.deadline_at(deadline):
                await waiter
        except TimeoutError:
            raise UpstreamConnectError(
                f"{self.host}:{self.port}: all {self.limits.pool_size} connections busy "
                f"for {self.limits.connect_s}s") from None
        finally:
            if not waiter.done():
                waiter.cancel()
            with _suppress_value_error():
                self.waiters.remove(waiter)

    async def _connect(self) -> _Conn:
        self.connecting += 1
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Conn(self), self.host, self.port,
                                            ssl=self.ssl),
                self.limits.connect_s)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise UpstreamConnectError(
                f"{self.host}:{self.port}: cannot connect: {reason}") from exc
        finally:
            self.connecting -= 1
            self._wake()
        return conn

    def finish(self, conn: _Conn) -> None:
        """An exchange is over: keep the connection for the next one, or close it."""
        if conn.reusable and not self.closed:
            conn.idle_since = self.loop.time()
            conn.busy = False
            self.idle.append(conn)
            self._wake()
        else:
            conn.close()

    def gone(self, conn: _Conn) -> None:
        self.live.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        self._wake()

    def _wake(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        self.closed = True
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()


class _suppress_value_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return kind is ValueError


class _Conn(asyncio.Protocol):
    """One keep-alive connection to a backend, one exchange at a time.

    The parser's callbacks fill in the answer; the exchange's coroutine waits on
    one future at a time (``_waiter``) for the head, the rest of a body, or a chunk.
    """

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.busy = False
        self.idle_since = 0.0
        self.when = _NEVER
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reused = False
        self._raw: list[tuple[bytes, bytes]] = []
        self._chunks: collections.deque[bytes] = collections.deque()
        self._clear()

    def _clear(self) -> None:
        self.error: UpstreamError | None = None
        self.status = 0
        self.length: int | None = None
        self.done = False
        self._got = False
        self._has_head = False
        self._head_only = False
        self._informational = False
        self._chunked = False
        self._keep = True
        self._sent = True
        self._renew = False
        self._chunks.clear()  # reused, not made anew for every exchange
        self._buffered = 0
        self._paused = False

    # ------------------------------------------------------------ the exchange
    @property
    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    @property
    def reusable(self) -> bool:
        return self.done and self._keep and self._sent and self.error is None and self.usable

    def begin(self, head_only: bool) -> None:
        self._reused = self.idle_since > 0.0
        self._clear()
        self.busy = True
        self._head_only = head_only

    def write(self, head: bytes, body: bytes | None) -> None:
        assert self.transport is not None
        if self.lost:
            raise self._lost_error()
        if not body:
            self.transport.write(head)
        elif len(body) <= _JOIN_LIMIT:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))

    async def write_stream(self, head: bytes, body: AsyncIterator[bytes], sized: bool,
                           read_s: float) -> None:
        """A body streamed from the client: with its Content-Length, or chunked. Stops
        early if the backend has answered already (the connection is then not reused).
        Waiting on the client is not bounded here; waiting on the backend is."""
        self.when = _NEVER
        self._sent = False
        self.write(head, None)
        transport = self.transport
        assert transport is not None
        try:
            async for chunk in body:
                if self._has_head or self.lost or self.error is not None:
                    return  # answered (or failed) before the body was in: let it speak
                if not chunk:
                    continue
                if sized:
                    transport.write(chunk)
                else:
                    transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                if self._write_paused:
                    self.when = self._pool.loop.time() + read_s
                    await self._drained()
                    self.when = _NEVER
        except GatewayError:
            raise  # our own refusal (a body over the limit), not the backend's failure
        except (asyncio.CancelledError, UpstreamError):
            raise
        except Exception as exc:
            raise UpstreamReset(f"request body failed: {exc!r}") from exc
        if not sized and not self.lost:
            transport.write(b"0\r\n\r\n")
        self._sent = True

    async def _drained(self) -> None:
        while self._write_paused and not self.lost and self.error is None:
            self._drain = self._pool.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self.error is not None:
            raise self.error
        if self.lost:
            raise self._lost_error()

    async def head(self) -> None:
        while not self._has_head:
            if self.error is not None:
                raise self.error
            if self.lost:
                raise self._lost_error()
            await self._wait()
        if self.error is not None and not self.done:
            raise self.error

    async def whole(self) -> bytes:
        while not self.done:
            if self.error is not None:
                raise self.error
            if self.lost:
                raise self._lost_error()
            await self._wait()
        chunks = self._chunks
        if not chunks:
            return b""
        if len(chunks) == 1:
            return chunks.popleft()
        body = b"".join(chunks)
        chunks.clear()
        return body

    async def chunk(self, read_s: float) -> bytes:
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks.popleft()
                self._buffered -= len(data)
                if self._paused and self._buffered <= _LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return data
            if self.done:
                return b""
            if self.error is not None:
                raise self.error
            if self.lost:
                raise self._lost_error()
            self.when = self._pool.loop.time() + read_s
            await self._wait()
            self.when = _NEVER  # the client may take its time with what came

    async def _wait(self) -> None:
        waiter = self._waiter = self._pool.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _lost_error(self) -> UpstreamError:
        where = f"{self._pool.host}:{self._pool.port}"
        if self._has_head:
            return UpstreamReset(f"{where}: body cut short")
        if not self._got and self._reused:
            return _StaleReset(f"{where}: closed a kept-alive connection")
        return UpstreamReset(f"{where}: connection lost")

    def _expire(self) -> None:
        """Called by the deadline watcher once ``when`` has passed."""
        if self.error is None and not self.done:
            where = f"{self._pool.host}:{self._pool.port}"
            self.error = UpstreamTimeout(f"{where}: body stalled" if self._has_head
                                         else f"{where}: no response in time")
            self._wake()
            drain = self._drain
            if drain is not None and not drain.done():
                drain.set_result(None)
        self.when = _NEVER
        self.close()

    def close(self) -> None:
        if self.transport is None or self.lost:
            return
        if self.busy and not self.reusable:
            self.transport.abort()  # mid-exchange: whatever is buffered is worthless
        else:
            self.transport.close()

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pool.live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.busy and not self.done and self._has_head and self.length is None \
                and not self._chunked and self.error is None:
            self.done = True  # a body delimited by the end of the connection
            self._keep = False
        self._wake()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        self._pool.gone(self)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        self._got = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError(
                f"{self._pool.host}:{self._pool.port}: invalid response: upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(
                f"{self._pool.host}:{self._pool.port}: invalid response: {exc}"))
        if self._renew:
            self._parser = httptools.HttpResponseParser(self)
            self._renew = False

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self._keep = False
        self._wake()
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        self._raw.clear()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self.length = int(value)
        elif size == 17 and name.lower() == b"transfer-encoding":
            self._chunked = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            if status == 101:
                self._fail(UpstreamProtocolError(
                    f"{self._pool.host}:{self._pool.port}: switched protocols"))
            self._informational = True  # 1xx: an interim answer; the real one follows
            return
        self.status = status
        self._keep = self._parser.should_keep_alive()
        self._has_head = True
        if self._head_only or status in (204, 304):
            self.length = None if self._head_only else 0
            self.done = True
            self._renew = self._head_only  # the parser would wait for the body HEAD announced
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.done:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            self._raw.clear()
            self.length = None
            self._chunked = False
            return
        self.done = True
        self._wake()

    def headers(self) -> list[tuple[str, str]]:
        """As aiohttp decoded them, so that they reach the client byte for byte."""
        return [(n.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                for n, v in self._raw]
