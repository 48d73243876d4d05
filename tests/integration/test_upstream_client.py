"""The gateway's HTTP client against real sockets: what a backend may do, and what the
pipeline gets back (``gateway.upstream.client``).

Each backend here is a small asyncio server scripted per test: well-behaved ones
(keep-alive, chunked, HEAD, 204, bodies to the end of the connection) and the
faults a proxy must survive (a kept-alive connection closed under a request,
garbage, a stall, a body cut short, an early answer to an upload).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from multidict import CIMultiDict

from gateway.errors import (
    PayloadTooLarge,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.forward import Outgoing
from gateway.upstream.client import ClientLimits, Clients, HttpUpstream
from testkit.net import await_until, free_port

Script = Callable[["Peer"], Awaitable[None]]


@dataclass
class Peer:
    """One accepted connection of a scripted backend."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def request(self) -> tuple[bytes, bytes]:
        """The next request's head, and its body (Content-Length or chunked)."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        if b"content-length:" in lower:
            n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
            return head, await self.reader.readexactly(n)
        if b"transfer-encoding: chunked" in lower:
            body = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    return head, body
                body += chunk[:-2]
        return head, b""

    def send(self, data: bytes) -> None:
        self.writer.write(data)


@dataclass
class Backend:
    url: str
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


def ok(body: bytes = b"hello", extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


@contextlib.asynccontextmanager
async def backend(script: Script) -> AsyncIterator[Backend]:
    port = free_port()
    info = Backend(f"http://127.0.0.1:{port}")
    handlers: set[asyncio.Task[None]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        info.connections += 1
        try:
            with contextlib.suppress(Exception):
                await script(Peer(reader, writer))
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(accept, "127.0.0.1", port)
    try:
        yield info
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def serve_forever(answer: Callable[[bytes, bytes], bytes], info: list[Backend]) -> Script:
    async def script(peer: Peer) -> None:
        while True:
            head, body = await peer.request()
            info[0].heads.append(head)
            info[0].bodies.append(body)
            peer.send(answer(head, body))
            await peer.writer.drain()
    return script


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    await made.close()


LIMITS = ClientLimits(connect_s=1.0, read_s=2.0, read_whole_bytes=1024)


def get(path: str = "/x", **headers: str) -> Outgoing:
    return Outgoing("GET", path, CIMultiDict(headers))


async def test_keep_alive_reuses_one_connection_and_passes_headers_byte_for_byte(
        clients: Clients) -> None:
    box: list[Backend] = []
    async with backend(serve_forever(lambda h, b: ok(b"hi", "X-Mixed: café\r\n"), box)) as info:
        box.append(info)
        up = HttpUpstream("n1", info.url, clients, LIMITS)
        for _ in range(5):
            result = await up.send(get(**{"X-Trace": "a b", "Cookie": "s=1"}))
            assert (result.status, result.body) == (200, b"hi")
        assert info.connections == 1, "five requests should share one kept-alive connection"
        head = info.heads[0]
        assert head.startswith(b"GET /x HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{info.url.rsplit(':', 1)[1]}\r\n".encode() in head
        assert b"X-Trace: a b\r\n" in head and b"Cookie: s=1\r\n" in head
        for default in (b"User-Agent", b"Accept", b"Accept-Encoding", b"Content-Length"):
            assert default not in head, f"the client added {default!r} of its own"
        assert result.headers["X-Mixed"] == "café"


async def test_a_kept_alive_connection_closed_under_a_get_is_retried_once_fresh(
        clients: Clients) -> None:
    async def one_answer_then_close_on_next(peer: Peer) -> None:
        await peer.request()
        peer.send(ok(b"first"))
        await peer.writer.drain()
        await peer.reader.readuntil(b"\r\n\r\n")  # the next request: dropped unanswered
        peer.writer.transport.abort()

    async with backend(one_answer_then_close_on_next) as info:
        up = HttpUpstream("n1", info.url, clients, LIMITS)
        assert (await up.send(get())).body == b"first"
        result = await up.send(get())
        assert result.body == b"first", "the GET should have been retried on a new connection"
        assert info.connections == 2


async def test_a_post_on_a_connection_closed_under_it_is_not_retried(clients: Clients) -> None:
    async def one_answer_then_close_on_next(peer: Peer) -> None:
        await peer.request()
        peer.send(ok(b"first"))
        await peer.writer.drain()
        await peer.reader.readuntil(b"\r\n\r\n")
        peer.writer.transport.abort()

    async with backend(one_answer_then_close_on_next) as info:
        up = HttpUpstream("n1", info.url, clients, LIMITS)
        await up.send(get())
        with pytest.raises(UpstreamReset):
            await up.send(Outgoing("POST", "/order", CIMultiDict(), b"{}"))
        assert info.connections == 1, "a POST the backend may have seen must not be re-sent"


async def test_head_204_and_304_have_no_body_and_keep_the_connection(clients: Clients) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")  # HEAD: length, no body
        await peer.request()
        peer.send(b"HTTP/1.1 204 No Content\r\n\r\n")
        await peer.request()
        peer.send(b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n")
        await peer.request()
        peer.send(ok(b"after"))
        await peer.writer.drain()
        await peer.reader.read()

    async with backend(script) as info:
        up = HttpUpstream("n1", info.url, clients, LIMITS)
        head = await up.send(Outgoing("HEAD", "/x", CIMultiDict()))
        assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", "1234")
        assert (await up.send(get())).status == 204
        assert (await up.send(get())).status == 304
        assert (await up.send(get())).body == b"after"
        assert info.connections == 1


async def test_chunked_and_large_answers_stream_and_the_connection_is_reused(
        clients: Clients) -> None:
    big = b"z" * 5000
    rest = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await peer.writer.drain()
        await rest.wait()
        peer.send(b"6\r\n world\r\n0\r\n\r\n")
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + big[:1000])
        await peer.writer.drain()
        await rest.wait()
        peer.send(big[1000:])
        await peer.request()
        peer.send(ok(b"small"))
        await peer.writer.drain()
        await peer.reader.read()

    async with backend(script) as info:
        up = HttpUpstream("n1", info.url, clients, LIMITS)
        chunked = await up.send(get())
        assert chunked.body is None and chunked.stream is not None, "should stream"
        assert chunked.stream.content_length is None
        rest.set()
        assert b"".join([c async for c in chunked.chunks()]) == b"hello world"
        rest.clear()
        large = await up.send(get())
        assert large.stream is not None and large.stream.content_length == 5000
        rest.set()
        assert b"".join([c async for c in large.chunks()]) == big
        assert (await up.send(get())).body == b"small"
        assert info.connections == 1


async def test_an_answer_complete_on_arrival_is_read_whole_whatever_its_size(
        clients: Clients) -> None:
    answers = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", ok(b"y" * 5000)]

    async def script(peer: Peer) -> None:
        for answer in answers:
            await peer.request()
            peer.send(answer)
            await peer.writer.drain()
        await peer.reader.read()

    async with backend(script) as info:
        up = HttpUpstream("n1", info.url, clients, LIMITS)
        # Whole or streamed depends on when the bytes arrive; the content never does.
        assert b"".join([c async for c in (await up.send(get())).chunks()]) == b"hello world"
        assert b"".join([c async for c in (await up.send(get())).chunks()]) == b"y" * 5000


async def test_a_body_delimited_by_the_end_of_the_connection(clients: Clients) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
        await peer.writer.drain()
        peer.writer.close()

    async with backend(script) as info:
        result = await HttpUpstream("n1", info.url, clients, LIMITS).send(get())
        assert b"".join([c async for c in result.chunks()]) == b"until the end"


async def test_a_body_cut_short_is_a_reset(clients: Clients) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await peer.writer.drain()
        peer.writer.transport.abort()

    async with backend(script) as info:
        with pytest.raises(UpstreamReset, match="cut short"):
            await HttpUpstream("n1", info.url, clients, LIMITS).send(get())


async def test_a_streamed_body_cut_short_raises_while_relaying(clients: Clients) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + b"a" * 3000)
        await peer.writer.drain()
        peer.writer.transport.abort()

    async with backend(script) as info:
        result = await HttpUpstream("n1", info.url, clients, LIMITS).send(get())
        with pytest.raises(UpstreamReset):
            async for _ in result.chunks():
                pass


async def test_garbage_is_a_protocol_error(clients: Clients) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.send(b"SMTP ready\r\n\r\n")
        await peer.writer.drain()
        await peer.reader.read()

    async with backend(script) as info:
        with pytest.raises(UpstreamProtocolError):
            await HttpUpstream("n1", info.url, clients, LIMITS).send(get())


async def test_an_interim_answer_is_skipped(clients: Clients) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + ok(b"real"))
        await peer.writer.drain()
        await peer.reader.read()

    async with backend(script) as info:
        result = await HttpUpstream("n1", info.url, clients, LIMITS).send(get())
        assert (result.status, result.body) == (200, b"real")
        assert "Link" not in result.headers


async def test_refused_is_a_connect_error(clients: Clients) -> None:
    up = HttpUpstream("n1", f"http://127.0.0.1:{free_port()}", clients, LIMITS)
    with pytest.raises(UpstreamConnectError, match="cannot connect"):
        await up.send(get())


async def test_a_backend_that_never_answers_times_out_within_read_s(clients: Clients) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.reader.read()

    limits = ClientLimits(connect_s=1.0, read_s=0.3)
    async with backend(script) as info:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimeout, match="no response in time"):
            await HttpUpstream("n1", info.url, clients, limits).send(get())
        assert loop.time() - started < 2.0


async def test_a_small_answer_dripped_slower_than_read_s_in_total_times_out(
        clients: Clients) -> None:
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
        for _ in range(40):
            peer.send(b"x")
            await peer.writer.drain()
            await asyncio.sleep(0.05)

    limits = ClientLimits(connect_s=1.0, read_s=0.5)
    async with backend(script) as info:
        with pytest.raises(UpstreamTimeout):
            await HttpUpstream("n1", info.url, clients, limits).send(get())


async def test_a_streamed_upload_with_and_without_length(clients: Clients) -> None:
    box: list[Backend] = []

    async def parts() -> AsyncIterator[bytes]:
        for piece in (b"one,", b"two,", b"three"):
            yield piece

    async with backend(serve_forever(lambda h, b: ok(b), box)) as info:
        box.append(info)
        up = HttpUpstream("n1", info.url, clients, LIMITS)
        sized = await up.send(Outgoing("POST", "/up", CIMultiDict(), parts(), 13))
        chunked = await up.send(Outgoing("POST", "/up", CIMultiDict(), parts(), None))
        assert sized.body == chunked.body == b"one,two,three"
        assert b"Content-Length: 13\r\n" in info.heads[0]
        assert b"Transfer-Encoding: chunked\r\n" in info.heads[1]
        assert info.connections == 1


async def test_our_refusal_of_an_upload_is_ours_not_the_backends(clients: Clients) -> None:
    box: list[Backend] = []

    async def too_big() -> AsyncIterator[bytes]:
        yield b"a" * 10
        raise PayloadTooLarge("body larger than 10 bytes")

    async with backend(serve_forever(lambda h, b: ok(), box)) as info:
        box.append(info)
        with pytest.raises(PayloadTooLarge):
            await HttpUpstream("n1", info.url, clients, LIMITS).send(
                Outgoing("POST", "/up", CIMultiDict(), too_big(), None))


async def test_an_empty_post_says_its_length(clients: Clients) -> None:
    box: list[Backend] = []
    async with backend(serve_forever(lambda h, b: ok(), box)) as info:
        box.append(info)
        await HttpUpstream("n1", info.url, clients, LIMITS).send(
            Outgoing("POST", "/logout", CIMultiDict()))
        assert b"Content-Length: 0\r\n" in info.heads[0]


async def test_a_header_with_a_line_break_is_never_sent(clients: Clients) -> None:
    box: list[Backend] = []
    async with backend(serve_forever(lambda h, b: ok(), box)) as info:
        box.append(info)
        with pytest.raises(UpstreamProtocolError, match="line break"):
            await HttpUpstream("n1", info.url, clients, LIMITS).send(
                get(**{"X-Evil": "a\r\nX-Injected: 1"}))
        assert info.heads == []


async def test_the_pool_cap_makes_requests_wait_then_refuses_after_connect_s(
        clients: Clients) -> None:
    release = asyncio.Event()
    seen = 0

    async def slow(peer: Peer) -> None:
        nonlocal seen
        while True:
            await peer.request()
            seen += 1
            await release.wait()
            peer.send(ok(b"done"))
            await peer.writer.drain()

    limits = ClientLimits(connect_s=0.3, read_s=5.0, pool_size=2)
    async with backend(slow) as info:
        up = HttpUpstream("n1", info.url, clients, limits)
        first = [asyncio.create_task(up.send(get())) for _ in range(2)]
        async def both_in() -> bool:
            return seen == 2

        await await_until(both_in, timeout=5, what="two requests in flight")
        with pytest.raises(UpstreamConnectError, match="busy"):
            await up.send(get())
        waiting = asyncio.create_task(up.send(get()))
        await asyncio.sleep(0)
        release.set()
        results = await asyncio.gather(*first, waiting)
        assert [r.body for r in results] == [b"done"] * 3
        assert info.connections == 2


async def test_a_large_answer_read_slowly_pushes_back_on_the_backend(clients: Clients) -> None:
    """The client buffers at most a few hundred KiB of an answer it has not relayed."""
    total = 8 * 1024 * 1024
    sent = 0

    async def script(peer: Peer) -> None:
        nonlocal sent
        await peer.request()
        peer.send(f"HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n".encode())
        block = b"b" * 65536
        while sent < total:
            peer.send(block)
            sent += len(block)
            await peer.writer.drain()

    async with backend(script) as info:
        result = await HttpUpstream("n1", info.url, clients, LIMITS).send(get())
        assert result.stream is not None
        first = await result.stream.read()
        assert first

        async def stalled() -> bool:
            before = sent
            await asyncio.sleep(0.2)
            return sent == before

        deadline = asyncio.get_running_loop().time() + 5
        while not await stalled():
            assert asyncio.get_running_loop().time() < deadline, "the backend never waited"
        assert sent < total, "the whole answer was buffered instead of pushing back"
        got = len(first) + sum([len(c) async for c in result.chunks()])
        assert got == total
