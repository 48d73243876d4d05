"""HTTP to a monolith's session-export hook, for the check.

``Transport.send`` is the seam: one request in, one ``Reply`` out, never an
exception for a node that did not answer. aiohttp's errors are translated here
and nowhere else; a timeout bounds every request, so the check cannot hang.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from adapters.wire import FENCE_HEADER, INTERNAL_SESSIONS_PATH, INTERNAL_TOKEN_HEADER

DEFAULT_TIMEOUT_S: Final = 5.0
MAX_REPLY_BYTES: Final = 8 * 1024 * 1024
"""A reply is read up to this size; a hook answering more is reported, not buffered."""
NOT_JSON: Final = object()


@dataclass(frozen=True, slots=True)
class Reply:
    """What the node answered: ``status`` is ``None`` when it did not (``problem`` says why)."""

    status: int | None
    body: bytes = b""
    problem: str = ""

    def json(self) -> Any:
        """The body as a JSON value, or ``NOT_JSON``."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return NOT_JSON

    def field(self, name: str) -> Any:
        """``body[name]`` when the body is a JSON object that has it, else ``None``."""
        obj = self.json()
        return obj.get(name) if isinstance(obj, dict) else None

    def __str__(self) -> str:
        if self.status is None:
            return f"no answer ({self.problem})"
        text = " ".join(self.body[:120].decode("utf-8", "replace").split())  # one line
        more = "..." if len(self.body) > 120 else ""
        return f"{self.status} {text}{more}".rstrip()


class Transport(Protocol):
    """Sends one request to the node and returns what it answered."""

    async def send(self, method: str, path: str, headers: dict[str, str],
                   body: bytes | None = None) -> Reply: ...


class AiohttpTransport:
    """The real one: one ``ClientSession``, cookies ignored, redirects not followed."""

    def __init__(self, base: URL, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._base = base
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpTransport:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, method: str, path: str, headers: dict[str, str],
                   body: bytes | None = None) -> Reply:
        assert self._session is not None, "use AiohttpTransport as an async context manager"
        url = self._base.with_path(self._base.path.rstrip("/") + path, encoded=True)
        # aiohttp writes big bytes in one go (and warns); a stream it sends in chunks
        data = io.BytesIO(body) if body is not None and len(body) > 64 * 1024 else body
        try:
            async with self._session.request(method, url, headers=headers, data=data,
                                             allow_redirects=False) as resp:
                raw = await _read(resp)
                if raw is None:
                    return Reply(resp.status, problem=f"a reply over {MAX_REPLY_BYTES} bytes")
                return Reply(resp.status, raw)
        except TimeoutError:
            return Reply(None, problem=f"no answer within {self._timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return Reply(None, problem=f"{type(exc).__name__}: {exc}".rstrip(": "))


async def _read(resp: aiohttp.ClientResponse) -> bytes | None:
    chunks, size = [], 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


WRONG_TOKEN: Final = "strangler-hook-check-wrong-token"  # noqa: S105 (wrong on purpose)
_RIGHT = object()


class HookClient:
    """The three hook calls over a ``Transport``, with the token unless told otherwise.

    ``token=None`` sends no token, a string sends that one instead of the right one.
    """

    def __init__(self, transport: Transport, token: str) -> None:
        self._transport = transport
        self._token = token

    def _headers(self, token: object, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **(extra or {})}
        given = self._token if token is _RIGHT else token
        if isinstance(given, str):
            headers[INTERNAL_TOKEN_HEADER] = given
        return headers

    async def get(self, sid: str, *, fence: str | int | None = None,
                  token: object = _RIGHT) -> Reply:
        extra = {FENCE_HEADER: str(fence)} if fence is not None else None
        return await self._transport.send("GET", _path(sid), self._headers(token, extra))

    async def put(self, sid: str, body: bytes | dict[str, Any], *,
                  token: object = _RIGHT) -> Reply:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self._transport.send("PUT", _path(sid), self._headers(token), raw)

    async def delete(self, sid: str, *, token: object = _RIGHT) -> Reply:
        return await self._transport.send("DELETE", _path(sid), self._headers(token))


def import_body(data: dict[str, Any], expected: int | None,
                fence: int | None = None) -> dict[str, Any]:
    """An import as docs/protocol.md §4 spells it."""
    body: dict[str, Any] = {"data": data, "expected_revision": expected}
    if fence is not None:
        body["fence"] = fence
    return body


def _path(sid: str) -> str:
    return INTERNAL_SESSIONS_PATH.format(sid=quote(sid, safe=""))
