"""The network seam: the only module that touches ``aiohttp.ClientSession``.

``HttpUpstream.send(Outgoing) -> UpstreamResult`` is the ``Upstream``
protocol the pipeline talks to. One pooled keep-alive session per process;
responses are not decompressed (``Content-Encoding`` is relayed untouched);
small bodies are read whole (so a failure can still fall back before the
client sees anything), large ones are handed over as a stream.

aiohttp's errors are translated here, once, into ``gateway.errors``:

    ClientConnectorError, ConnectionTimeoutError -> UpstreamConnectError (never reached)
    SocketTimeoutError, asyncio.TimeoutError     -> UpstreamTimeout
    ServerDisconnectedError, ClientOSError,
    ClientPayloadError (mid-body)                 -> UpstreamReset
    ClientResponseError (garbage status/headers)  -> UpstreamProtocolError
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.deadlines import deadline_at
from gateway.errors import (
    GatewayError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)

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


@dataclass(slots=True)
class UpstreamResult:
    """A backend's response: headers, and the body read whole or still streaming."""

    upstream_id: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes | None
    stream: aiohttp.ClientResponse | None = None
    read_s: float | None = None
    """Bound on each read of a streamed body, when aiohttp's own ``sock_read`` is off."""

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises UpstreamReset if the backend stops mid-body."""
        if self.stream is None:
            if self.body:
                yield self.body
            return
        content = self.stream.content
        try:
            while True:
                if self.read_s is None:
                    chunk = await content.readany()
                else:
                    async with deadline_at(asyncio.get_running_loop().time() + self.read_s):
                        chunk = await content.readany()
                if not chunk:
                    break
                yield chunk
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise UpstreamReset(f"{self.upstream_id}: body cut short: {exc}") from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.upstream_id}: body stalled") from exc
        finally:
            self.release()

    def release(self) -> None:
        if self.stream is not None:
            self.stream.release()
            self.stream = None


class Upstream(Protocol):
    """Something that can answer a request: one legacy node or new instance."""

    id: str

    async def send(self, request: Outgoing) -> UpstreamResult:
        """Send and return the response; raise an ``UpstreamError`` if none came."""


@dataclass(frozen=True, slots=True)
class ClientLimits:
    connect_s: float = 1.0
    read_s: float = 15.0
    pool_size: int = 256
    read_whole_bytes: int = 256 * 1024


class _TransparentRequest(aiohttp.ClientRequest):
    """A request that sends the headers the gateway built and adds none of aiohttp's
    defaults (``Accept``, ``Accept-Encoding``, ``User-Agent``, and ``Content-Type``
    for a body the client sent without one). aiohttp's own way to say so,
    ``skip_auto_headers``, builds and sorts a fresh multidict and copies every
    header on each request: 15 % of the gateway's samples under load."""

    _skip_auto_headers = CIMultiDict(
        (name, None) for name in ("Accept", "Accept-Encoding", "Content-Type", "User-Agent"))

    def update_auto_headers(self, skip_auto_headers: object) -> None:
        return None


def new_client_session(limits: ClientLimits) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=limits.pool_size, limit_per_host=limits.pool_size, keepalive_timeout=30,
        ttl_dns_cache=300, enable_cleanup_closed=False,
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        request_class=_TransparentRequest,
        timeout=_client_timeout(limits),
    )


def _client_timeout(limits: ClientLimits, per_read: bool = True) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, connect=limits.connect_s,
                                 sock_connect=limits.connect_s,
                                 sock_read=limits.read_s if per_read else None)


class HttpUpstream:
    """An ``Upstream`` at a base URL, sharing the process's pooled session."""

    def __init__(self, upstream_id: str, base_url: str, session: aiohttp.ClientSession,
                 limits: ClientLimits) -> None:
        self.id = upstream_id
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._whole = limits.read_whole_bytes
        self._read_s = limits.read_s
        # Per upstream, not only per session: a config reload builds new upstreams
        # with new timeouts on the same pooled session.
        self._timeout = _client_timeout(limits)
        self._timeout_bounded = _client_timeout(limits, per_read=False)
        """Under a whole-exchange deadline a per-read timer is redundant (aiohttp
        re-arms one for every chunk received)."""

    async def send(self, request: Outgoing) -> UpstreamResult:
        headers = request.headers
        streamed_in = request.body is not None and not isinstance(request.body, bytes)
        if request.length is not None and streamed_in:
            headers = CIMultiDict(headers)
            headers["Content-Length"] = str(request.length)
        # A whole exchange (headers, and a body read whole) is bounded by ``read_s``
        # in total, so a backend dripping a small answer cannot hold a request past
        # it; each read of a large answer streamed on is bounded by ``read_s`` too.
        # Streamed uploads are exempt from the total (a slow client is not the
        # backend's fault): aiohttp's per-read timeout bounds them.
        if streamed_in:
            bound: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
            timeout, read_s = self._timeout, None
        else:
            bound = deadline_at(asyncio.get_running_loop().time() + self._read_s)
            timeout, read_s = self._timeout_bounded, self._read_s
        try:
            async with bound:
                resp = await self._session.request(
                    request.method, self.base_url + request.target, headers=headers,
                    data=request.body, allow_redirects=False, timeout=timeout)
                return await self._result(request, resp, read_s)
        except UpstreamError:
            raise
        except Exception as exc:
            if isinstance(exc.__cause__, GatewayError):
                # Our own refusal raised while streaming the request body (e.g. a
                # chunked body over the limit), wrapped by aiohttp: it is not a
                # backend failure and must not count against the backend.
                raise exc.__cause__ from None
            raise _translate(self.id, exc) from exc

    async def _result(self, request: Outgoing, resp: aiohttp.ClientResponse,
                      read_s: float | None) -> UpstreamResult:
        try:
            length = resp.content_length
            if request.method == "HEAD" or resp.status in (204, 304):
                body = b""
            elif length is not None and length <= self._whole:
                body = await resp.read()
            else:
                return UpstreamResult(self.id, resp.status, resp.headers, None, resp, read_s)
        except BaseException:
            resp.release()
            raise
        resp.release()
        return UpstreamResult(self.id, resp.status, resp.headers, body)


def _translate(upstream_id: str, exc: BaseException) -> UpstreamError:
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return UpstreamConnectError(f"{upstream_id}: cannot connect: {exc}")
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return UpstreamTimeout(f"{upstream_id}: no response in time")
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamProtocolError(f"{upstream_id}: invalid response: {exc.message}")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientConnectionError | OSError):
        return UpstreamReset(f"{upstream_id}: connection lost: {exc}")
    if isinstance(exc, UpstreamError):
        return exc
    raise exc
