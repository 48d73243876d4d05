"""HTTP/1.1 over a raw socket: send exactly these bytes, read what comes back.

Clients (aiohttp, curl) normalise what they send -- they resolve ``..``, refuse
to write a bare LF, merge duplicate headers -- so hostile shapes have to be
written by hand. ``RawConnection`` writes bytes as given and parses responses
itself, every read bounded by a deadline; ``exchange`` is the one-shot form
(send, read every response until the server closes or the deadline passes).

Nothing here sleeps and hopes: a read either completes, sees the server close
the connection, or runs into its deadline, and the caller learns which.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from multidict import CIMultiDict

DEFAULT_DEADLINE_S = 5.0
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass
class RawResponse:
    status: int
    reason: str
    version: str
    headers: CIMultiDict[str]
    body: bytes
    raw_head: bytes
    """Status line and headers exactly as received, for assertions on the wire form."""

    @property
    def keep_alive(self) -> bool:
        """Whether the server announced it would keep the connection open."""
        tokens = {t.strip().lower() for t in self.headers.get("Connection", "").split(",")}
        if "close" in tokens:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in tokens


@dataclass
class Outcome:
    """Everything a server sent on one connection, until it closed or the deadline passed."""

    responses: list[RawResponse] = field(default_factory=list)
    closed: bool = False
    """The server closed (or reset) the connection before the deadline."""
    leftover: bytes = b""
    """Bytes after the last complete response (a truncated or unparsable one)."""

    @property
    def first(self) -> RawResponse:
        assert self.responses, f"no response at all (leftover {self.leftover[:200]!r})"
        return self.responses[0]


class ResponseError(Exception):
    """The server sent something that is not an HTTP/1.1 response."""


class RawConnection:
    """One TCP connection to ``host:port``; bytes in, parsed responses out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buf = b""
        self.eof = False

    @classmethod
    async def open(cls, host: str, port: int, *, deadline_s: float = DEFAULT_DEADLINE_S,
                   source: str | None = None) -> RawConnection:
        """Connect; ``source`` picks the local address (``127.0.0.2`` is another loopback
        peer, e.g. a trusted proxy)."""
        local = (source, 0) if source else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local), deadline_s)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        """Write ``data`` as is; a server that already hung up is not an error here."""
        with contextlib.suppress(ConnectionError):
            self._writer.write(data)
            await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> RawConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ reading
    async def _fill(self, until: float) -> bool:
        """Read more bytes into the buffer; False on EOF. TimeoutError past ``until``."""
        if self.eof:
            return False
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        try:
            chunk = await asyncio.wait_for(self._reader.read(65536), remaining)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self._buf += chunk
        return True

    async def _until(self, marker: bytes, until: float) -> bytes | None:
        while marker not in self._buf:
            if not await self._fill(until):
                return None
        head, _, self._buf = self._buf.partition(marker)
        return head

    async def _exactly(self, n: int, until: float) -> bytes | None:
        while len(self._buf) < n:
            if not await self._fill(until):
                return None
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    async def read_response(self, *, deadline_s: float = DEFAULT_DEADLINE_S,
                            head: bool = False) -> RawResponse | None:
        """The next response; None if the server closed first. TimeoutError at the deadline.

        ``head``: the request was HEAD, so the response has no body whatever it declares.
        """
        until = time.monotonic() + deadline_s
        raw_head = await self._until(b"\r\n\r\n", until)
        if raw_head is None:
            return None
        lines = raw_head.split(b"\r\n")
        try:
            version, status_s, *rest = lines[0].decode("latin-1").split(" ", 2)
            status = int(status_s)
        except ValueError as exc:
            raise ResponseError(f"bad status line {lines[0][:100]!r}") from exc
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise ResponseError(f"bad header line {line[:100]!r}")
            headers.add(name.strip(), value.strip())
        body = await self._body(status, headers, head, until)
        return RawResponse(status, rest[0] if rest else "", version, headers, body, raw_head)

    async def _body(self, status: int, headers: CIMultiDict[str], head: bool,
                    until: float) -> bytes:
        if head or status < 200 or status in _NO_BODY_STATUS:
            return b""
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            return await self._chunked(until)
        if "Content-Length" in headers:
            body = await self._exactly(int(headers["Content-Length"]), until)
            if body is None:
                raise ResponseError("connection closed inside a response body")
            return body
        while await self._fill(until):  # delimited by close
            pass
        body, self._buf = self._buf, b""
        return body

    async def _chunked(self, until: float) -> bytes:
        body = b""
        while True:
            size_line = await self._until(b"\r\n", until)
            if size_line is None:
                raise ResponseError("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := await self._until(b"\r\n", until)) not in (b"", None):
                    del trailer  # trailers are not needed by any test
                return body
            chunk = await self._exactly(size + 2, until)
            if chunk is None:
                raise ResponseError("connection closed inside a chunk")
            body += chunk[:-2]

    async def read_all(self, *, deadline_s: float = DEFAULT_DEADLINE_S, head: bool = False,
                       limit: int | None = None) -> Outcome:
        """Every response until the server closes, ``deadline_s`` passes, or ``limit``
        responses are in."""
        until = time.monotonic() + deadline_s
        outcome = Outcome()
        while limit is None or len(outcome.responses) < limit:
            try:
                resp = await self.read_response(deadline_s=until - time.monotonic(), head=head)
            except TimeoutError:
                break
            except ResponseError:
                outcome.closed = self.eof
                break
            if resp is None:
                outcome.closed = True
                break
            outcome.responses.append(resp)
        outcome.leftover = self._buf
        return outcome

    async def closed_by_server(self, *, deadline_s: float = DEFAULT_DEADLINE_S) -> bool:
        """True once the server has closed; False if it kept the connection past the deadline.

        Bytes that arrive meanwhile stay buffered (a later ``read_response`` sees them).
        """
        until = time.monotonic() + deadline_s
        try:
            while await self._fill(until):
                pass
        except TimeoutError:
            return False
        return True


async def exchange(host: str, port: int, data: bytes, *, expect: int | None = 1,
                   deadline_s: float = DEFAULT_DEADLINE_S, head: bool = False,
                   source: str | None = None) -> Outcome:
    """Open a connection, send ``data``, collect responses.

    With ``expect=n``, return as soon as n responses are in (or the server closed, or the
    deadline passed); with ``expect=None``, read until the server closes or the deadline.
    """
    async with await RawConnection.open(host, port, deadline_s=deadline_s,
                                        source=source) as conn:
        await conn.send(data)
        return await conn.read_all(deadline_s=deadline_s, head=head, limit=expect)


def request(method: str, target: str, headers: list[tuple[str, str]] | None = None,
            body: bytes = b"", *, host: str = "gw.test", eol: bytes = b"\r\n") -> bytes:
    """One request as bytes. Nothing is added that the caller did not ask for, except
    ``Host``; ``Content-Length`` is the caller's business (a test may want it wrong)."""
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"),
             f"Host: {host}".encode("latin-1")]
    lines += [f"{k}: {v}".encode("latin-1") for k, v in headers or ()]
    return eol.join(lines) + eol + eol + body
