"""The few cookies the gateway reads, parsed without building ``Morsel`` objects.

aiohttp's ``request.cookies`` builds a full ``SimpleCookie`` for every
request; the gateway needs a few plain tokens out of the header. For its own
cookies the first occurrence of a name wins (RFC 6265 5.4: the more specific
cookie comes first). The monolith's session cookie is resolved as the
monolith's framework resolves it (``session_cookie``): two requests that name
two users must never be one user to the gateway and another to the monolith.
Values are returned as sent, minus surrounding double quotes.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class DuplicateCookie(Exception):
    """The session cookie came more than once and the profile says ``reject``."""


def parse(header: str | None, session: str | None = None,
          rule: str = "first") -> dict[str, str]:
    """Cookies by name, the first of each; ``session`` (a name) resolved by ``rule``:
    ``first``, ``last``, or ``reject`` (``DuplicateCookie`` when it comes twice, even
    with the same value: a browser that holds two will not keep them equal)."""
    found: dict[str, str] = {}
    if not header:
        return found
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if not sep:
            continue
        name = name.strip()
        if not name:
            continue
        if name in found:
            if name != session or rule == "first":
                continue
            if rule == "reject":
                raise DuplicateCookie(name)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        found[name] = value
    return found


def expire_lines(name: str, path: str, host: str, *, secure: bool) -> list[str]:
    """``Set-Cookie`` lines that expire every copy of ``name`` a browser may send to
    ``path``: host-only and for the host's domain, at ``/`` and each parent of ``path``."""
    paths = ["/"]
    at = ""
    for part in [p for p in path.split("/") if p][:8]:
        if not _TOKEN.fullmatch(part):
            break  # never echo what could end the attribute (``;``) or smuggle one in
        at += "/" + part
        paths.append(at)
    domain = host.rsplit(":", 1)[0] if not host.startswith("[") else ""
    domains = [""]
    if domain and not domain.replace(".", "").isdigit() and _TOKEN.fullmatch(domain):
        domains.append(f"; Domain={domain}")
    tail = "; Secure" if secure else ""
    return [f"{name}=; Max-Age=0; Path={p}{d}{tail}" for p in paths for d in domains]


def set_cookie(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value for one of the gateway's own cookies (``Path=/``,
    ``HttpOnly``, ``SameSite=Lax``), formatted directly: aiohttp's ``set_cookie``
    builds a ``SimpleCookie`` and a ``Morsel`` per call. Names and values are the
    gateway's own tokens (node ids, URL-safe random strings), never client input."""
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"cookie {name}: value outside the token alphabet")
    age = f"; Max-Age={max_age}" if max_age is not None else ""
    return f"{name}={value}{age}; HttpOnly; Path=/; SameSite=Lax{'; Secure' if secure else ''}"
