"""Small aiohttp helpers shared by the handler modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None
                  ) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def redirect(location: str) -> web.Response:
    """303 See Other: after a form post, the browser GETs ``location``."""
    return web.Response(status=303, headers={"Location": location})


def is_https(request: web.Request) -> bool:
    # The gateway terminates TLS and says so; the node itself speaks plain HTTP.
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" or request.secure
