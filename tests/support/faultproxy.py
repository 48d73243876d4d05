"""A fault-injecting HTTP/1.1 proxy, put between the gateway and one backend.

    gateway --> FaultProxy (127.0.0.1:<free port>) --> backend

It runs in the test's event loop (asyncio streams) and understands just
enough HTTP/1.1 to act per request: request and response heads, bodies
framed by Content-Length or chunked (raw bytes, relayed unchanged), and
keep-alive. The fault in force is read when a request has arrived, so
``await proxy.set(Mode.X, ...)`` applies to the next request on any
connection, fresh or pooled.

    mode                   what the gateway sees                    backend acted?
    pass                   the backend's response                   yes
    refuse                 connection refused (listener closed,     no
                           open connections reset)
    reset_before_response  request read, then RST (SO_LINGER 0)     no
    forward_then_reset     RST after the backend fully answered     yes
    close_mid_body         head and ``cut_after`` body bytes, FIN   yes
    slow_headers           response head held ``delay`` seconds     yes
    slow_body              head, then ``trickle_bytes`` every       yes
                           ``trickle_interval`` seconds
    garbage                ``garbage`` bytes, then close            no

Requests to ``spare`` paths (health checks, by default) are always relayed,
so a fault hits the requests a test sends, not the gateway's health checker;
``refuse`` is the exception, since it acts before any request is read.

Not a general proxy: a request body is read whole before it is forwarded,
and each request gets a backend connection of its own.

What reached the proxy is kept in ``seen`` (one ``Seen`` per request, with
``forwarded`` telling whether the backend got it, and ``outcome`` telling
how it ended: ``client_gone`` when the gateway closed the connection while a
response was held back). ``hits``/``requests`` leave out spared paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_HEAD_LIMIT = 64 * 1024
_PIECE = 64 * 1024
_NO_BODY_STATUS = (204, 304)

GARBAGE_AFTER_STATUS = b"HTTP/1.1 200 OK\r\n\x00\x01\x02 this is not a header line\r\n\r\n"
"""A valid status line, then bytes no HTTP parser accepts as a header."""
NOT_HTTP = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 SSH-2.0-definitely-not-http\r\n"
"""No status line at all: what a TLS or SSH server on the wrong port would send."""


class Mode(StrEnum):
    PASS = "pass"
    REFUSE = "refuse"
    RESET_BEFORE_RESPONSE = "reset_before_response"
    FORWARD_THEN_RESET = "forward_then_reset"
    CLOSE_MID_BODY = "close_mid_body"
    SLOW_HEADERS = "slow_headers"
    SLOW_BODY = "slow_body"
    GARBAGE = "garbage"


@dataclass(frozen=True, slots=True)
class Fault:
    """A mode and its knobs; only the ones the mode uses matter."""

    mode: Mode = Mode.PASS
    delay: float = 5.0
    """slow_headers: seconds the response head is held back."""
    cut_after: int | None = None
    """close_mid_body: body bytes relayed before the close (None: half the body)."""
    trickle_bytes: int = 1024
    trickle_interval: float = 0.05
    garbage: bytes = GARBAGE_AFTER_STATUS


@dataclass(slots=True)
class Seen:
    """One request that reached the proxy, and what became of it."""

    conn: int
    method: str
    target: str
    mode: Mode
    spared: bool
    forwarded: bool = False
    """The whole request was written to the backend."""
    status: int | None = None
    """The backend's response status, when one came."""
    outcome: str = "pending"
    """relayed, reset, cut, garbage, client_gone, upstream_unreachable, upstream_closed."""
    headers: dict[str, str] = field(default_factory=dict)
    """Request headers, names lower-cased (the last of repeated ones)."""


class _Closed(Exception):
    """The peer closed the connection before a full message."""


class _In:
    """A stream reader with push-back, so watching for EOF never loses bytes."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._r = reader
        self._buf = bytearray()

    async def some(self) -> bytes:
        """Whatever is available (b"" at EOF)."""
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            return data
        return await self._r.read(_PIECE)

    def push(self, data: bytes) -> None:
        self._buf[:0] = data

    async def until(self, sep: bytes, limit: int = _HEAD_LIMIT) -> bytes | None:
        """Bytes up to and including ``sep``; None on EOF before any byte."""
        while (i := self._buf.find(sep)) < 0:
            if len(self._buf) > limit:
                raise _Closed(f"no {sep!r} in {limit} bytes")
            data = await self._r.read(_PIECE)
            if not data:
                if self._buf:
                    raise _Closed("EOF inside a message head")
                return None
            self._buf += data
        end = i + len(sep)
        out = bytes(self._buf[:end])
        del self._buf[:end]
        return out

    async def exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            data = await self._r.read(_PIECE)
            if not data:
                raise _Closed(f"EOF after {len(self._buf)} of {n} body bytes")
            self._buf += data
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


@dataclass(frozen=True, slots=True)
class _Head:
    raw: bytes
    first: list[str]
    headers: dict[str, str]

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        lines = raw.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return cls(raw, lines[0].split(" ", 2), headers)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def closes(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


async def _pieces(src: _In, head: _Head, *, until_eof: bool) -> AsyncIterator[bytes]:
    """A message body as raw bytes (chunk framing kept), in pieces as they arrive."""
    if head.chunked:
        while True:
            line = await src.until(b"\r\n")
            if line is None:
                raise _Closed("EOF before a chunk")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                trailer = b""
                while (t := await src.until(b"\r\n")) not in (b"\r\n", None):
                    trailer += t
                yield line + trailer + b"\r\n"
                return
            yield line + await src.exactly(size + 2)
    elif head.length is not None:
        left = head.length
        while left:
            piece = await src.exactly(min(left, _PIECE))
            left -= len(piece)
            yield piece
    elif until_eof:
        while piece := await src.some():
            yield piece


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: SO_LINGER on, zero seconds."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A switchable fault between a client (the gateway) and ``upstream_port``."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1",
                 host: str = "127.0.0.1", port: int = 0,
                 spare: tuple[str, ...] = ("/healthz",)) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.spare = spare
        self.fault = Fault()
        self.seen: list[Seen] = []
        self.connections = 0
        """Connections accepted from the client side, ever."""
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    # ------------------------------------------------------------ control
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def mode(self) -> Mode:
        return self.fault.mode

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def requests(self) -> list[Seen]:
        """Requests the fault applies to (spared paths left out)."""
        return [s for s in self.seen if not s.spared]

    @property
    def hits(self) -> int:
        return len(self.requests)

    @property
    def forwarded(self) -> int:
        """Requests (spared paths left out) that reached the backend."""
        return sum(1 for s in self.requests if s.forwarded)

    async def start(self) -> FaultProxy:
        await self._listen()
        return self

    async def set(self, mode: Mode | str, **knobs: Any) -> None:
        """Switch the fault; ``knobs`` are ``Fault`` fields (delay, cut_after, ...)."""
        await self.apply(Fault(Mode(mode), **knobs))

    async def apply(self, fault: Fault) -> None:
        """Switch to ``fault`` from the next request on (``refuse``: at once)."""
        self.fault = fault
        if fault.mode is Mode.REFUSE:
            self._unlisten()
            for writer in list(self._open):
                _rst(writer)
        elif self._server is None:
            await self._listen()

    async def stop(self) -> None:
        self._unlisten()
        for writer in list(self._open):
            _rst(writer)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()  # listening socket closed at once: connects are refused
            self._server = None

    # ------------------------------------------------------------ serving
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        conn = self.connections
        self._open.add(writer)
        cin = _In(reader)
        try:
            while await self._one(conn, cin, writer):
                pass
        except (_Closed, ConnectionError, OSError, ValueError):
            pass  # a peer went away or sent what we cannot frame: this connection is done
        finally:
            self._open.discard(writer)
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.transport.close()

    async def _one(self, conn: int, cin: _In, out: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the client connection is done."""
        raw = await cin.until(b"\r\n\r\n")
        if raw is None:
            return False
        head = _Head.parse(raw)
        body = b"".join([p async for p in _pieces(cin, head, until_eof=False)])
        method, target = [*head.first, "", ""][:2]
        path = target.split("?", 1)[0]
        spared = any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.spare)
        fault = Fault() if spared else self.fault
        seen = Seen(conn, method, target, fault.mode, spared, headers=head.headers)
        self.seen.append(seen)
        if fault.mode in (Mode.RESET_BEFORE_RESPONSE, Mode.REFUSE):
            seen.outcome = "reset"
            _rst(out)
            return False
        if fault.mode is Mode.GARBAGE:
            seen.outcome = "garbage"
            out.write(fault.garbage)
            await out.drain()
            out.close()
            return False
        return await self._forward(seen, fault, raw + body, cin, out)

    async def _forward(self, seen: Seen, fault: Fault, request: bytes, cin: _In,
                       out: asyncio.StreamWriter) -> bool:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            seen.outcome = "upstream_unreachable"
            _rst(out)
            return False
        try:
            up_w.write(request)
            await up_w.drain()
            seen.forwarded = True
            up = _In(up_r)
            raw = await up.until(b"\r\n\r\n")
            if raw is None:
                seen.outcome = "upstream_closed"
                _rst(out)
                return False
            head = _Head.parse(raw)
            seen.status = int(head.first[1]) if len(head.first) > 1 else None
            no_body = seen.method == "HEAD" or seen.status in _NO_BODY_STATUS
            body = _nothing() if no_body else _pieces(up, head, until_eof=True)
            return await self._respond(seen, fault, head, body, cin, out)
        finally:
            up_w.close()

    async def _respond(self, seen: Seen, fault: Fault, head: _Head,
                       body: AsyncIterator[bytes], cin: _In, out: asyncio.StreamWriter) -> bool:
        mode = fault.mode
        if mode is Mode.FORWARD_THEN_RESET:
            async for _ in body:
                pass  # the backend finishes its answer (and its work); the client gets none
            seen.outcome = "reset"
            _rst(out)
            return False
        if mode is Mode.SLOW_HEADERS and not await self._hold(cin, fault.delay):
            seen.outcome = "client_gone"
            return False
        out.write(head.raw)
        if mode is Mode.CLOSE_MID_BODY:
            data = b"".join([p async for p in body])
            cut = len(data) // 2 if fault.cut_after is None else fault.cut_after
            out.write(data[:cut])
            await out.drain()
            seen.outcome = "cut"
            out.close()
            return False
        async for piece in body:
            if mode is Mode.SLOW_BODY:
                for i in range(0, len(piece), fault.trickle_bytes):
                    out.write(piece[i:i + fault.trickle_bytes])
                    await out.drain()
                    if not await self._hold(cin, fault.trickle_interval):
                        seen.outcome = "client_gone"
                        return False
            else:
                out.write(piece)
                await out.drain()
        seen.outcome = "relayed"
        until_eof = head.length is None and not head.chunked
        return not (head.closes or seen.headers.get("connection") == "close" or until_eof)

    async def _hold(self, cin: _In, seconds: float) -> bool:
        """Wait ``seconds``; False as soon as the client closes its side."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            read = asyncio.ensure_future(cin.some())
            try:
                done, _ = await asyncio.wait({read}, timeout=left)
                if not done:
                    return True
                data = read.result()
            except (ConnectionError, OSError):
                return False
            finally:
                read.cancel()
                await asyncio.wait({read})  # its reader must be free before the next read
            if not data:
                return False
            cin.push(data)  # bytes ahead of our answer: keep them for the next request
            await asyncio.sleep(left)
            return True
        return True
