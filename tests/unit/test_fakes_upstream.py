"""``testkit.fakes.MemoryUpstream``: a backend in memory that answers, records and fails
the way the network client does, so the pipeline's stages can be tested without one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from multidict import CIMultiDict

from gateway.errors import (
    BadRequest,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.upstream.client import ClientLimits
from gateway.upstream.forward import Outgoing, UpstreamResult
from gateway.upstream.pools import LegacyPool
from testkit.fakes import MemoryUpstream, Reply


def get(target: str = "/things", body: bytes | AsyncIterator[bytes] | None = None,
        method: str = "GET") -> Outgoing:
    return Outgoing(method, target, CIMultiDict({"X-Request-Id": "r1"}), body)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def whole(result: UpstreamResult) -> bytes:
    return b"".join([c async for c in result.chunks()])


async def test_a_handler_answers_and_every_request_is_recorded() -> None:
    backend = MemoryUpstream("new-1", "http://new-1:8080/",
                             lambda r: Reply.json({"path": r.target}, headers={"X-A": "1"}))
    result = await backend.send(get("/things?q=1"))
    assert (backend.id, backend.base_url) == ("new-1", "http://new-1:8080")
    assert result.upstream_id == "new-1" and result.status == 200
    assert result.body == b'{"path": "/things?q=1"}' and result.stream is None
    assert result.headers["Content-Type"] == "application/json"
    assert result.headers["Content-Length"] == str(len(result.body))
    assert result.headers["X-A"] == "1"
    assert [(r.method, r.target, r.headers["X-Request-Id"]) for r in backend.received] == \
        [("GET", "/things?q=1", "r1")]


async def test_an_async_handler_and_no_handler_at_all() -> None:
    async def answer(request: Outgoing) -> Reply:
        return Reply(201, b"made")

    assert (await MemoryUpstream("n", handler=answer).send(get())).status == 201
    plain = await MemoryUpstream("n").send(get())
    assert (plain.status, plain.body) == (200, b"")


async def test_a_streamed_request_body_is_read_whole_and_recorded() -> None:
    backend = MemoryUpstream("n", handler=lambda r: Reply(200, r.body or b""))
    result = await backend.send(get(body=chunks(b"ab", b"cd"), method="POST"))
    assert result.body == b"abcd" and backend.received[0].body == b"abcd"


async def test_a_request_body_that_fails_is_a_reset_but_the_gateway_s_own_refusal_is_not(
        ) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"ab"
        raise ConnectionResetError("client went away")

    async def refused() -> AsyncIterator[bytes]:
        yield b"ab"
        raise BadRequest("body over the limit")

    backend = MemoryUpstream("n")
    with pytest.raises(UpstreamReset, match="request body failed"):
        await backend.send(get(body=broken(), method="POST"))
    with pytest.raises(BadRequest):
        await backend.send(get(body=refused(), method="POST"))


async def test_the_next_requests_fail_to_connect_then_it_answers_again() -> None:
    backend = MemoryUpstream("n", handler=lambda r: Reply(200, b"ok"))
    backend.fail_next(2)
    body = chunks(b"never read")
    for _ in range(2):
        with pytest.raises(UpstreamConnectError):
            await backend.send(get(body=body, method="POST"))
    assert (await backend.send(get())).body == b"ok"
    assert len(backend.received) == 3
    assert backend.received[0].body is body, "a refused connection reads nothing"


@pytest.mark.parametrize("failure", [UpstreamTimeout, UpstreamReset, UpstreamProtocolError])
async def test_a_failure_after_the_request_went_out(failure: type[UpstreamError]) -> None:
    backend = MemoryUpstream("n")
    backend.fail_next(1, failure)
    with pytest.raises(failure) as info:
        await backend.send(get(body=chunks(b"x"), method="POST"))
    assert type(info.value) is failure and info.value.kind == failure.kind
    assert backend.received[0].body == b"x", "the backend got the request"
    assert (await backend.send(get())).status == 200


async def test_a_5xx_is_an_answer_not_an_exception() -> None:
    backend = MemoryUpstream("n")
    backend.fail_next(2, 503)
    statuses = [(await backend.send(get())).status for _ in range(3)]
    assert statuses == [503, 503, 200]


async def test_scripted_answers_go_first_in_order() -> None:
    backend = MemoryUpstream("n", handler=lambda r: Reply(200, b"handler"))
    backend.script(Reply(404), UpstreamReset("gone mid-answer"), Reply(502, b"bad"))
    assert (await backend.send(get())).status == 404
    with pytest.raises(UpstreamReset):
        await backend.send(get())
    assert (await backend.send(get())).body == b"bad"
    assert (await backend.send(get())).body == b"handler"


async def test_a_streamed_answer_comes_chunk_by_chunk_and_is_released() -> None:
    backend = MemoryUpstream("n", handler=lambda r: Reply.stream([b"one", b"two"]))
    result = await backend.send(get())
    assert result.body is None and result.stream is not None
    assert result.stream.content_length is None
    assert result.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in result.headers
    assert await whole(result) == b"onetwo"
    assert backend.streams[0].released and result.stream is None


async def test_a_sized_stream_says_its_length() -> None:
    backend = MemoryUpstream("n", handler=lambda r: Reply.stream([b"abc"], length=3))
    result = await backend.send(get())
    assert result.stream is not None and result.stream.content_length == 3
    assert result.headers["Content-Length"] == "3"
    assert await whole(result) == b"abc"


@pytest.mark.parametrize("cut", [UpstreamReset, UpstreamTimeout])
async def test_a_streamed_answer_cut_short(cut: type[UpstreamError]) -> None:
    backend = MemoryUpstream("n", handler=lambda r: Reply.stream([b"half"], length=8, cut=cut))
    result = await backend.send(get())
    got: list[bytes] = []
    with pytest.raises(cut):
        async for chunk in result.chunks():
            got.append(chunk)
    assert got == [b"half"]
    assert backend.streams[0].released, "UpstreamResult.chunks releases it, as it must"


async def test_a_reader_that_gives_up_releases_the_stream() -> None:
    backend = MemoryUpstream("n", handler=lambda r: Reply.stream([b"a", b"b", b"c"]))
    result = await backend.send(get())
    assert result.stream is not None and await result.stream.read() == b"a"
    result.release()
    assert backend.streams[0].released
    assert await backend.streams[0].read() == b"", "nothing more once released"


async def test_an_answer_later_than_the_read_deadline_is_a_timeout() -> None:
    backend = MemoryUpstream("n", limits=ClientLimits(read_s=0.05),
                             handler=lambda r: Reply(200, b"late", delay_s=5))
    with pytest.raises(UpstreamTimeout, match="no response in time"):
        await backend.send(get())
    slow = MemoryUpstream("n", limits=ClientLimits(read_s=1),
                          handler=lambda r: Reply(200, b"slow", delay_s=0.01))
    assert (await slow.send(get())).body == b"slow"


async def test_head_and_bodiless_statuses() -> None:
    backend = MemoryUpstream("n", handler=lambda r: Reply(200, b"12345"))
    head = await backend.send(get(method="HEAD"))
    assert head.body == b"" and head.headers["Content-Length"] == "5"
    none = await MemoryUpstream("n", handler=lambda r: Reply(204)).send(get())
    assert "Content-Length" not in none.headers


async def test_it_stands_in_a_pool_health_checks_and_all() -> None:
    nodes = [MemoryUpstream("a", handler=lambda r: Reply.json({"boot_id": "b1"})),
             MemoryUpstream("b")]
    nodes[1].fail_next(1)
    pool = LegacyPool("legacy", list(nodes), "/healthz")
    await pool.check_all()
    assert [m.id for m in pool.healthy] == ["a"] and pool.members["a"].boot_id == "b1"
    assert nodes[0].received[0].target == "/healthz"
    await pool.check_all()
    assert [m.id for m in pool.healthy] == ["a", "b"]
