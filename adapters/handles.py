"""Session handles: how tokens and Redis name a session without its cookie.

A monolith's session id is a credential: whoever holds it is logged in. So it
never appears in a token or a Redis key. Both use the session's *handle*::

    handle = base64url(HMAC-SHA256(key, session_id as UTF-8)), no padding (43 chars)

with a server-side key (``tokens.session_key`` in config: an env variable or a
file) that the gateway and any service that creates sessions share. A leaked
token or a copy of Redis yields handles, and a handle yields no cookie.
docs/protocol.md states the same in words for services in other languages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

HANDLE_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
COOKIE_ID_RE: Final = re.compile(r"[\x21\x23-\x3a\x3c-\x5b\x5d-\x7a\x7c\x7e]{1,4096}")
"""A session id as any framework may set it: RFC 6265 cookie-octets and the comma (Java's
``ABC123.node1``, PHP's ``a1,b2-c3``, URL-encoded values...); never a quote, a space, a
semicolon, a backslash or a control character, and no braces (no framework makes them,
and common routers refuse them in a path segment)."""
MIN_KEY_BYTES: Final = 32


class HandleKeyError(ValueError):
    """The session key is missing or too short to be a secret."""


def check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise HandleKeyError(f"the session key must be at least {MIN_KEY_BYTES} bytes")
    return key


def session_handle(key: bytes, session_id: str) -> str:
    digest = hmac.new(key, session_id.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def valid_cookie_id(value: str) -> bool:
    """The monolith's session cookie value could be a session id (it is never trusted
    beyond that: it only names a session to ask the monolith about)."""
    return COOKIE_ID_RE.fullmatch(value) is not None


def valid_handle(handle: str) -> bool:
    return HANDLE_RE.fullmatch(handle) is not None
