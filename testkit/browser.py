"""A browser over real HTTP: its own cookie jar (the monolith's session cookie and the
gateway's cookies), answers as ``Reply``. ``ShopUser`` and ``NotesUser`` add one method
per route of their app."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
from multidict import CIMultiDictProxy


@dataclass
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]

    @property
    def backend(self) -> str | None:
        """``legacy`` or ``new`` (from the debug header the test stacks turn on)."""
        value = self.headers.get("X-Strangler-Backend")
        return value.split(":")[0] if value else None

    @property
    def upstream(self) -> str | None:
        """The node or instance id that served it (``a``, ``n1``...)."""
        value = self.headers.get("X-Strangler-Backend")
        return value.split(":")[1] if value else None


class Browser:
    """One browser-like client of a site whose session cookie is ``session_cookie``."""

    session_cookie = ""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.jar = aiohttp.CookieJar(unsafe=True)
        self.http = aiohttp.ClientSession(cookie_jar=self.jar,
                                          timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, method: str, path: str, json: Any = None,
                   headers: dict[str, str] | None = None) -> Reply:
        async with self.http.request(method, self.base + path, json=json,
                                     headers=headers) as resp:
            return Reply(resp.status, _body(await resp.read()), resp.headers)

    @property
    def session_id(self) -> str | None:
        for cookie in self.jar:
            if cookie.key == self.session_cookie:
                return cookie.value
        return None


def _body(raw: bytes) -> Any:
    """JSON when it is, the text otherwise (an error page), None when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
