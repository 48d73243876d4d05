"""``MemoryUpstream``: a backend in memory behind ``gateway.upstream.forward.Upstream``.

It answers from a handler (``Outgoing -> Reply``, plain or async) or from a script of
answers queued ahead of it, records every request it is sent, and fails as
``gateway.upstream.client.HttpUpstream`` fails: the same ``UpstreamError``s, a
whole exchange bounded by ``ClientLimits.read_s``, a streamed request body read to
its end (a body that fails is ``UpstreamReset``), a streamed answer that stops
short. A 5xx is an answer, as on the network, not an exception.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import (
    GatewayError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamReset,
    UpstreamTimeout,
)
from gateway.upstream.client import ClientLimits
from gateway.upstream.forward import Body, Outgoing, Upstream, UpstreamResult

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Reply:
    """One answer of a ``MemoryUpstream``."""

    status: int = 200
    body: bytes = b""
    headers: Headers = ()
    """As the backend sends them; ``Content-Length`` (or, for an unsized stream,
    ``Transfer-Encoding: chunked``) is added when missing."""
    chunks: tuple[bytes, ...] | None = None
    """A streamed answer: one chunk per read of its ``BodyStream`` (``body`` unused)."""
    length: int | None = None
    """A streamed answer's Content-Length (None: chunked)."""
    cut: type[UpstreamError] | None = None
    """A streamed answer that stops after its chunks: ``UpstreamReset`` (the backend went
    away mid-body), ``UpstreamTimeout`` (it stalled)."""
    delay_s: float = 0.0
    """Time before the answer's head; past ``ClientLimits.read_s`` it is an
    ``UpstreamTimeout`` at ``read_s``, as the network client's deadline makes it."""

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: Headers = ()) -> Reply:
        return cls(status, json.dumps(value).encode(),
                   (("Content-Type", "application/json"), *_pairs(headers)))

    @classmethod
    def stream(cls, chunks: Iterable[bytes], *, status: int = 200, headers: Headers = (),
               length: int | None = None, cut: type[UpstreamError] | None = None) -> Reply:
        return cls(status, headers=headers, chunks=tuple(chunks), length=length, cut=cut)


Handler = Callable[[Outgoing], Reply | Awaitable[Reply]]


class MemoryStream:
    """A streamed answer (``gateway.upstream.forward.BodyStream``) handing out scripted chunks."""

    def __init__(self, chunks: Iterable[bytes], content_length: int | None,
                 cut: UpstreamError | None) -> None:
        self.content_length = content_length
        self._chunks = deque(chunks)
        self._cut = cut
        self.released = False
        """Whether the reader let it go (read to the end, or gave up on it)."""

    async def read(self) -> bytes:
        if self.released:
            return b""
        await asyncio.sleep(0)  # a chunk arrives from elsewhere
        if self._chunks:
            return self._chunks.popleft()
        if self._cut is not None:
            raise self._cut
        self.release()
        return b""

    def release(self) -> None:
        self.released = True


class MemoryUpstream:
    """``Upstream`` in memory: ``handler`` answers, unless answers were queued
    (``script``, ``fail_next``), which go first, one per request -- health checks
    included, as on the network. With neither, it answers 200 and an empty body.

    ``received`` holds every request sent, in order, a streamed body read whole into
    bytes (a request that failed to connect is recorded as it came, its body unread);
    ``streams`` every streamed answer handed out, to see that it was released.
    """

    def __init__(self, upstream_id: str, base_url: str = "", handler: Handler | None = None,
                 *, limits: ClientLimits | None = None) -> None:
        self.id = upstream_id
        self.base_url = (base_url or f"memory://{upstream_id}").rstrip("/")
        self.received: list[Outgoing] = []
        self.streams: list[MemoryStream] = []
        self._handler = handler
        self._script: deque[Reply | UpstreamError] = deque()
        self._read_s = (limits or ClientLimits()).read_s

    def script(self, *answers: Reply | UpstreamError) -> None:
        """Queue answers for the next requests: a ``Reply``, or an error raised as the
        network client raises it."""
        self._script.extend(answers)

    def fail_next(self, count: int = 1,
                  failure: type[UpstreamError] | int = UpstreamConnectError) -> None:
        """The next ``count`` requests fail: an ``UpstreamError`` class is raised (connect:
        refused, the body never read; timeout, reset, protocol: after the backend got
        the request), a status is answered (a 5xx the backend reports)."""
        for _ in range(count):
            if isinstance(failure, int):
                self._script.append(Reply(failure, b"scripted failure"))
            else:
                self._script.append(failure(f"{self.id}: scripted {failure.kind}"))

    async def send(self, request: Outgoing) -> UpstreamResult:
        answer = self._script.popleft() if self._script else None
        if isinstance(answer, UpstreamConnectError):
            self.received.append(request)
            raise answer
        request = replace(request, body=await _whole(request.body))
        self.received.append(request)
        if isinstance(answer, UpstreamError):
            raise answer
        if answer is None:
            answer = await self._answer(request)
        if answer.delay_s > self._read_s:
            await asyncio.sleep(self._read_s)
            raise UpstreamTimeout(f"{self.id}: no response in time")
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return self._result(request, answer)

    async def _answer(self, request: Outgoing) -> Reply:
        if self._handler is None:
            return Reply()
        reply = self._handler(request)
        return await reply if inspect.isawaitable(reply) else reply

    def _result(self, request: Outgoing, reply: Reply) -> UpstreamResult:
        headers = CIMultiDict(_pairs(reply.headers))
        framed = "Content-Length" in headers or "Transfer-Encoding" in headers
        if reply.chunks is None:
            if not framed and reply.status >= 200 and reply.status not in (204, 304):
                headers["Content-Length"] = str(len(reply.body))
            body = b"" if request.method == "HEAD" else reply.body
            return UpstreamResult(self.id, reply.status, CIMultiDictProxy(headers), body)
        if not framed:
            if reply.length is not None:
                headers["Content-Length"] = str(reply.length)
            else:
                headers["Transfer-Encoding"] = "chunked"
        cut = None if reply.cut is None else reply.cut(f"{self.id}: body cut short")
        stream = MemoryStream(reply.chunks, reply.length, cut)
        self.streams.append(stream)
        return UpstreamResult(self.id, reply.status, CIMultiDictProxy(headers), None, stream)


async def _whole(body: Body) -> bytes | None:
    """A streamed request body read to its end, as the backend would read it."""
    if body is None or isinstance(body, bytes):
        return body
    return b"".join([chunk async for chunk in _guarded(body)])


async def _guarded(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    except (GatewayError, asyncio.CancelledError):
        raise  # the gateway's own refusal (a body over its limit), or the client gone
    except Exception as exc:
        raise UpstreamReset(f"request body failed: {exc!r}") from exc


def _pairs(headers: Headers) -> list[tuple[str, str]]:
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


if TYPE_CHECKING:  # mypy holds the fake to the port
    _port: Upstream = MemoryUpstream("fake")
