"""The floor for a reverse proxy in Python: asyncio protocols on uvloop, llhttp via httptools.

Scenario H's reference row ``lean proxy``: what a Python proxy costs when it
only parses and copies, with no framework on either side. Requests are parsed
with ``httptools.HttpRequestParser``; upstream connections are kept alive in one
shared pool (as many as requests in flight, so an idle client holds none, and
the memory rows count client connections only); answers are parsed with
``httptools.HttpResponseParser`` and read whole, status and headers copied minus
hop-by-hop ones, sent on with a Content-Length. It does what the bench sends and
no more: no HEAD, no 1xx, no upgrades, no timeouts, nothing streamed.

    python -m bench.lean_proxy --upstream http://127.0.0.1:8101 --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast
from urllib.parse import urlsplit

import httptools
import uvloop

from bench.hop import HOP_BY_HOP

_DROP_REQUEST = frozenset(h.encode() for h in HOP_BY_HOP | {"host", "content-length"})
_DROP_RESPONSE = frozenset(h.encode() for h in HOP_BY_HOP | {"content-length"})
_BAD_GATEWAY = (b"HTTP/1.1 502 Bad Gateway\r\n", b"")
Answer = tuple[bytes, bytes]
"""Status line and headers (without the blank line and Content-Length), and the body."""


class Upstream(asyncio.Protocol):
    """One keep-alive connection to the upstream, one request at a time."""

    __slots__ = ("answer", "body", "head", "parser", "reason", "reusable", "transport")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[Answer] | None = None
        self.reason = b""
        self.head: list[bytes] = []
        self.body: list[bytes] = []
        self.reusable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.reason, self.head, self.body = b"", [], []
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)

    def on_status(self, reason: bytes) -> None:
        self.reason += reason  # llhttp may hand the reason over in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _DROP_RESPONSE:
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self.parser.should_keep_alive()
        status = b"HTTP/1.1 %d %s\r\n" % (self.parser.get_status_code(), self.reason)
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((status + b"".join(self.head), b"".join(self.body)))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("upstream closed the connection"))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Idle upstream connections, shared by every client connection."""

    def __init__(self, upstream: str) -> None:
        url = urlsplit(upstream)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.host_header = b"host: %s\r\n" % url.netloc.encode()
        self.idle: list[Upstream] = []

    async def forward(self, request: bytes) -> Answer:
        try:
            upstream = await self._acquire()
            answer = await upstream.send(request)
        except (OSError, httptools.HttpParserError):
            return _BAD_GATEWAY
        if upstream.reusable:
            self.idle.append(upstream)
        elif upstream.transport is not None:  # it answered "connection: close"
            upstream.transport.close()
        return answer

    async def _acquire(self) -> Upstream:
        while self.idle:
            upstream = self.idle.pop()
            if upstream.reusable:  # else the upstream closed it while it sat in the pool
                return upstream
        _, upstream = await asyncio.get_running_loop().create_connection(
            Upstream, self.host, self.port)
        return upstream


class Client(asyncio.Protocol):
    """One client connection: requests parsed as they arrive, answered in order."""

    __slots__ = ("answering", "body", "head", "parser", "pending", "pool", "transport", "url")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url, self.head = b"", [pool.host_header]
        self.body: list[bytes] = []
        self.pending: list[tuple[bytes, bool]] = []  # (request, keep-alive) in arrival order
        self.answering: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _DROP_REQUEST:
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        length = b"content-length: %d\r\n" % len(body) if body else b""
        request = b"%s %s HTTP/1.1\r\n%s%s\r\n%s" % (
            self.parser.get_method(), self.url, b"".join(self.head), length, body)
        self.url, self.head, self.body = b"", [self.pool.host_header], []
        self.pending.append((request, self.parser.should_keep_alive()))
        if self.answering is None:  # a pipelined request waits for the one before it
            self.answering = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        assert self.transport is not None
        while self.pending:
            request, keep_alive = self.pending.pop(0)
            head, body = await self.pool.forward(request)
            if self.transport.is_closing():
                break
            close = b"" if keep_alive else b"connection: close\r\n"
            self.transport.write(b"%s%scontent-length: %d\r\n\r\n%s"
                                 % (head, close, len(body), body))
            if not keep_alive:
                self.transport.close()
                break
        self.answering = None


async def serve(upstream: str, host: str, port: int) -> None:
    pool = Pool(upstream)
    server = await asyncio.get_running_loop().create_server(
        lambda: Client(pool), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.upstream, args.host, args.port))


if __name__ == "__main__":
    main()
