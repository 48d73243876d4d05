"""The few cookies the gateway reads, parsed without building ``Morsel`` objects.

aiohttp's ``request.cookies`` builds a full ``SimpleCookie`` for every
request; the gateway needs four plain tokens out of the header. The first
occurrence of a name wins (RFC 6265 5.4: the more specific cookie comes first).
Values are returned as sent, minus surrounding double quotes.
"""

from __future__ import annotations


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
