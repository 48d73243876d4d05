"""What the listener hands the pipeline, and what it gets back.

``Incoming`` is one client request as the listener parsed it: method, raw target,
version, headers, the peer, and its body (read whole, or streamed, with the
``100 Continue`` the pipeline decides to send). ``Reply`` is the answer: status,
headers, and a body in hand or a stream the listener writes out with
back-pressure. Neither knows the socket; the listener (``gateway.edge.server``)
does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import GatewayError, MethodNotAllowed


class BodySource(Protocol):
    """A request body as it arrives (``gateway.edge.server``; an in-memory one in tests)."""

    async def read(self) -> bytes:
        """The next chunk; ``b""`` at the end."""

    async def send_continue(self) -> None:
        """Tell a client that sent ``Expect: 100-continue`` to go on."""


@dataclass(slots=True)
class Incoming:
    """One request from a client."""

    method: str
    target: str
    """The request target as sent (path and query), not yet canonical."""
    version: tuple[int, int]
    headers: CIMultiDictProxy[str]
    peer: str
    """The client's address (the connection's, not a header's)."""
    scheme: str = "http"
    length: int | None = None
    """The Content-Length the client declared, if any."""
    chunked: bool = False
    body: BodySource | None = None

    @property
    def body_exists(self) -> bool:
        return self.chunked or bool(self.length)

    async def read(self) -> bytes:
        """The whole body (the caller has checked its size)."""
        if self.body is None:
            return b""
        parts = []
        while chunk := await self.body.read():
            parts.append(chunk)
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        if self.body is None:
            return
        while chunk := await self.body.read():
            yield chunk

    async def send_continue(self) -> None:
        if self.body is not None:
            await self.body.send_continue()


@dataclass(slots=True)
class Reply:
    """An answer for the client. The listener adds ``Content-Length`` (or chunked
    framing for a stream of unknown length), ``Date`` and ``Connection``."""

    status: int
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    """A body still arriving; ``body`` is then unused."""
    length: int | None = None
    """The stream's length, when known; for a HEAD answer, the length a GET would have."""
    close: bool = False
    """Close the connection after this answer (its framing cannot be trusted)."""


class Abort(Exception):
    """Raised by a reply's stream whose source failed after the head was sent: the
    listener cuts the connection, the only honest signal left."""


def problem(exc: GatewayError, rid: str) -> Reply:
    """An RFC 9457 problem+json answer for a gateway error.

    The client is told ``public_detail``: a backend failure's detail names hosts
    and ports, a blocked path's its pattern; that stays in the log (with the same
    request id).
    """
    body = orjson.dumps({"type": "about:blank", "title": exc.code, "status": exc.status,
                         "detail": exc.public_detail, "request_id": rid})
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Content-Type"] = "application/problem+json"
    headers["X-Request-Id"] = rid
    for line in exc.cookies:
        headers.add("Set-Cookie", line)
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allow)
    if exc.status == 503:
        headers["Retry-After"] = "1"
    return Reply(exc.status, headers, body)


def raw_problem(status: int, code: str, detail: str, rid: str) -> bytes:
    """A whole problem+json response as bytes, for the answers given outside any request
    (too many connections, a head that never finished, a malformed request); the
    connection then closes."""
    body = orjson.dumps({"type": "about:blank", "title": code, "status": status,
                         "detail": detail, "request_id": rid})
    reason = {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Request-Id: {rid}\r\n"
            + ("Retry-After: 1\r\n" if status == 503 else "") + "\r\n")
    return head.encode("ascii") + body
