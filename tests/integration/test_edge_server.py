"""The public listener (``gateway.edge.server``) on real sockets, with a handler that
echoes what it was given: HTTP/1.1 framing in both directions, apart from the
pipeline. Hostile shapes, limits and timers are proven through the whole gateway
in test_gw_hostile.py, test_gw_edge.py and tests/e2e/test_connections.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from multidict import CIMultiDict

from gateway.edge.http import Abort, Incoming, Reply
from gateway.edge.server import Connection, ConnectionLimits, ParseLimits, ProxyServer
from gateway.observe.metrics import Metrics
from testkit.net import free_port
from tests.support.rawhttp import RawConnection, exchange, request

Handle = Callable[[Incoming, str, Connection], Awaitable[Reply]]
Serve = Callable[[Handle], Awaitable[int]]


async def echo(incoming: Incoming, rid: str, conn: Connection) -> Reply:
    body = await incoming.read()
    said = {"method": incoming.method, "target": incoming.target, "rid": rid,
            "version": list(incoming.version), "peer": incoming.peer, "body": body.decode(),
            "headers": [[k, v] for k, v in incoming.headers.items()]}
    return Reply(200, CIMultiDict({"Content-Type": "application/json"}),
                 json.dumps(said).encode())


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[ProxyServer] = []

    async def start(handle: Handle) -> int:
        server = ProxyServer(handle, ConnectionLimits(header_read_s=2, keepalive_idle_s=5,
                                                      body_read_s=2),
                             ParseLimits(max_line=1024, max_field=1024, max_headers=20),
                             Metrics())
        port = free_port()
        await server.listen("127.0.0.1", port)
        servers.append(server)
        return port

    yield start
    for server in servers:
        await server.shutdown(1.0)


async def test_pipelined_requests_are_answered_in_order_on_one_connection(serve: Serve) -> None:
    port = await serve(echo)
    data = b"".join(request("GET", f"/{i}", [("X-Request-Id", f"pipelined-{i:04}")])
                    for i in range(5))
    out = await exchange("127.0.0.1", port, data, expect=5)
    assert [json.loads(r.body)["target"] for r in out.responses] == [f"/{i}" for i in range(5)]
    assert [r.headers.get("Connection") for r in out.responses] == [None] * 5
    assert json.loads(out.first.body)["rid"] == "pipelined-0000"


async def test_a_body_sized_or_chunked_reaches_the_handler_whole(serve: Serve) -> None:
    port = await serve(echo)
    sized = request("POST", "/s", [("Content-Length", "5")], b"hello")
    chunked = request("POST", "/c", [("Transfer-Encoding", "chunked")],
                      b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
    out = await exchange("127.0.0.1", port, sized + chunked, expect=2)
    assert [json.loads(r.body)["body"] for r in out.responses] == ["hello", "abcdefg"]


async def test_100_continue_is_sent_only_when_the_handler_asks(serve: Serve) -> None:
    async def wants_body(incoming: Incoming, rid: str, conn: Connection) -> Reply:
        await incoming.send_continue()
        return Reply(200, CIMultiDict(), await incoming.read())

    port = await serve(wants_body)
    async with await RawConnection.open("127.0.0.1", port) as conn:
        await conn.send(request("PUT", "/x", [("Content-Length", "4"),
                                               ("Expect", "100-continue")]))
        interim = await conn.read_response()
        assert interim is not None and interim.status == 100
        await conn.send(b"data")
        final = await conn.read_response()
        assert final is not None and (final.status, final.body) == (200, b"data")


async def test_a_stream_of_unknown_length_is_chunked_for_1_1_and_closes_for_1_0(
        serve: Serve) -> None:
    async def streams(incoming: Incoming, rid: str, conn: Connection) -> Reply:
        async def parts() -> AsyncIterator[bytes]:
            for piece in (b"one ", b"two ", b"three"):
                yield piece
        return Reply(200, CIMultiDict(), stream=parts())

    port = await serve(streams)
    out = await exchange("127.0.0.1", port, request("GET", "/a") * 2, expect=2)
    assert [r.body for r in out.responses] == [b"one two three"] * 2
    assert out.first.headers["Transfer-Encoding"] == "chunked"
    old = await exchange("127.0.0.1", port, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                         expect=None)
    assert old.first.body == b"one two three" and "Content-Length" not in old.first.headers
    assert old.closed, "a body delimited by the close must be closed"


async def test_head_says_the_length_a_get_would_have_and_sends_no_body(serve: Serve) -> None:
    async def head(incoming: Incoming, rid: str, conn: Connection) -> Reply:
        return Reply(200, CIMultiDict(), b"", length=1234)

    port = await serve(head)
    async with await RawConnection.open("127.0.0.1", port) as conn:
        await conn.send(request("HEAD", "/x") + request("GET", "/y"))
        first = await conn.read_response(head=True)
        assert first is not None and first.headers["Content-Length"] == "1234"
        second = await conn.read_response()
        assert second is not None and second.headers["Content-Length"] == "0"


async def test_an_upgrade_offer_is_declined_and_the_connection_goes_on(serve: Serve) -> None:
    port = await serve(echo)
    offer = request("GET", "/ws", [("Connection", "Upgrade"), ("Upgrade", "websocket")])
    out = await exchange("127.0.0.1", port, offer + request("GET", "/after"), expect=2)
    assert [r.status for r in out.responses] == [200, 200]
    assert json.loads(out.responses[1].body)["target"] == "/after"


async def test_connect_is_answered_then_the_connection_closes(serve: Serve) -> None:
    port = await serve(echo)
    out = await exchange("127.0.0.1", port,
                         b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\nTUNNELBYTES",
                         expect=None)
    assert len(out.responses) == 1 and out.closed


async def test_a_stream_that_fails_midway_cuts_the_connection(serve: Serve) -> None:
    async def fails(incoming: Incoming, rid: str, conn: Connection) -> Reply:
        async def parts() -> AsyncIterator[bytes]:
            yield b"partial"
            raise Abort("the backend went away")
        return Reply(200, CIMultiDict(), stream=parts(), length=100)

    port = await serve(fails)
    async with await RawConnection.open("127.0.0.1", port) as conn:
        await conn.send(request("GET", "/x"))
        assert await conn.closed_by_server(), "a cut answer must end in a cut connection"


async def test_a_client_that_leaves_cancels_its_request(serve: Serve) -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def waits(incoming: Incoming, rid: str, conn: Connection) -> Reply:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    port = await serve(waits)
    conn = await RawConnection.open("127.0.0.1", port)
    await conn.send(request("GET", "/x"))
    await asyncio.wait_for(started.wait(), 5)
    await conn.close()
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_a_slow_reader_pushes_back_on_a_stream(serve: Serve) -> None:
    produced = 0

    async def big(incoming: Incoming, rid: str, conn: Connection) -> Reply:
        async def parts() -> AsyncIterator[bytes]:
            nonlocal produced
            block = b"x" * 65536
            for _ in range(256):  # 16 MiB
                produced += len(block)
                yield block
        return Reply(200, CIMultiDict(), stream=parts(), length=256 * 65536)

    port = await serve(big)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.set_write_buffer_limits(0)
    writer.write(request("GET", "/big"))
    await writer.drain()
    await reader.readexactly(1024)  # then read nothing more for a while

    async def settled() -> int:
        before = produced
        await asyncio.sleep(0.2)
        return produced if produced == before else -1

    deadline = asyncio.get_running_loop().time() + 10
    while (held := await settled()) < 0:
        assert asyncio.get_running_loop().time() < deadline, "the stream never waited"
    assert held < 256 * 65536, "the whole stream was buffered for a client that reads nothing"
    writer.close()


async def test_shutdown_lets_a_request_in_flight_finish_and_closes_idle_ones() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(incoming: Incoming, rid: str, conn: Connection) -> Reply:
        if incoming.target == "/slow":
            started.set()
            await release.wait()
        return Reply(200, CIMultiDict(), b"done")

    port = free_port()
    server = ProxyServer(slow, ConnectionLimits(), ParseLimits(), Metrics())
    await server.listen("127.0.0.1", port)
    idle = await RawConnection.open("127.0.0.1", port)
    await idle.send(request("GET", "/fast"))
    assert (await idle.read_response()) is not None
    busy = await RawConnection.open("127.0.0.1", port)
    await busy.send(request("GET", "/slow"))
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(server.shutdown(5.0))
    assert await idle.closed_by_server(), "an idle keep-alive connection is closed at once"
    release.set()
    answer = await busy.read_response()
    assert answer is not None and answer.body == b"done"
    assert answer.headers.get("Connection") == "close"
    assert await stopping == 0
    await idle.close()
    await busy.close()
