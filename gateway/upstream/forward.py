"""What the pipeline and a backend say to each other, whatever carries it.

``Upstream.send(Outgoing) -> UpstreamResult`` is the port every backend sits
behind: ``gateway.upstream.client.HttpUpstream`` over the network, an in-memory
one in tests (``testkit.fakes``). A result holds the status, the headers, and
the body read whole (so a failure can still fall back before the client sees
anything) or a ``BodyStream`` still arriving. Failures are ``gateway.errors``'
``UpstreamError``s, never a transport library's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

Body = bytes | AsyncIterator[bytes] | None


@dataclass(frozen=True, slots=True)
class Outgoing:
    method: str
    target: str
    """Path and query, already canonical."""
    headers: CIMultiDict[str]
    body: Body = None
    length: int | None = None
    """Content-Length of a streamed body, when the client sent one."""


class BodyStream(Protocol):
    """A body still arriving from a backend."""

    content_length: int | None

    async def read(self) -> bytes:
        """The next chunk; ``b""`` at the end. Raises ``UpstreamReset`` if the backend
        stops mid-body, ``UpstreamTimeout`` if it stalls."""

    def release(self) -> None:
        """Done with it (read to the end or not); idempotent."""


@dataclass(slots=True)
class UpstreamResult:
    """A backend's response: headers, and the body read whole or still streaming."""

    upstream_id: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes | None
    stream: BodyStream | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises UpstreamReset if the backend stops mid-body."""
        if self.stream is None:
            if self.body:
                yield self.body
            return
        try:
            while chunk := await self.stream.read():
                yield chunk
        finally:
            self.release()

    async def whole(self, limit: int) -> bytes:
        """The body read whole -- also one still streaming (a chunked answer whose end had
        not come with its head) -- and released. Past ``limit`` bytes the rest is left
        unread (the connection goes): the result is longer than ``limit``, for the caller
        to refuse."""
        if self.stream is None:
            return self.body or b""
        buf = bytearray()
        async for chunk in self.chunks():
            buf += chunk
            if len(buf) > limit:
                self.release()
                break
        return bytes(buf)

    def release(self) -> None:
        if self.stream is not None:
            self.stream.release()
            self.stream = None


class Upstream(Protocol):
    """Something that can answer a request: one legacy node or new instance."""

    id: str
    base_url: str
    """Where it is (a reload keeps a member whose id and URL did not change)."""

    async def send(self, request: Outgoing) -> UpstreamResult:
        """Send and return the response; raise an ``UpstreamError`` if none came."""
