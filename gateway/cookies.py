"""The few cookies the gateway reads, parsed without building ``Morsel`` objects.

aiohttp's ``request.cookies`` builds a full ``SimpleCookie`` for every
request; the gateway needs four plain tokens out of the header. The first
occurrence of a name wins (RFC 6265 5.4: the more specific cookie comes first).
Values are returned as sent, minus surrounding double quotes.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def parse(header: str | None) -> dict[str, str]:
    found: dict[str, str] = {}
    if not header:
        return found
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip()
        if name and name not in found:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found[name] = value
    return found


def set_cookie(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value for one of the gateway's own cookies (``Path=/``,
    ``HttpOnly``, ``SameSite=Lax``), formatted directly: aiohttp's ``set_cookie``
    builds a ``SimpleCookie`` and a ``Morsel`` per call. Names and values are the
    gateway's own tokens (node ids, URL-safe random strings), never client input."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"cookie {name}: value outside the token alphabet")
    age = f"; Max-Age={max_age}" if max_age is not None else ""
    return f"{name}={value}{age}; HttpOnly; Path=/; SameSite=Lax{'; Secure' if secure else ''}"
