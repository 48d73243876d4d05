"""Which session id a request carries: the LAST ``sessionid`` cookie wins.

That is Django's rule (``django.http.cookie.parse_cookie`` fills a dict, so a
later duplicate overwrites an earlier one), and the opposite of RFC 6265's
advice that the first, more specific cookie comes first. It is implemented here
explicitly from the raw ``Cookie`` header(s), not left to whatever a cookie
library does, because a gateway in front of this app must pick the same one.

Details, each as Django does it: pairs are split on ``;`` and on the first
``=``; names and values are stripped of spaces; one pair of surrounding double
quotes is removed (escapes inside are not decoded: a session id never has any).
Several ``Cookie`` headers count as one, in order. An empty value counts as
"no session" -- also when it is the last one and an earlier one was not empty.
So does a value no session id could have (this node's ids are 43 URL-safe
characters; 16 to 128 are accepted, as on the export hook's path): it names
no session, and it is never echoed back in ``X-Notes-Session``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

COOKIE = "sessionid"
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")


def valid_session_id(value: str) -> bool:
    return _SESSION_ID.fullmatch(value) is not None


def session_id(headers: Iterable[str]) -> str | None:
    """The session id the request carries: the last ``sessionid``, if it could be one."""
    value = last_cookie(headers)
    return value if value is not None and valid_session_id(value) else None


def last_cookie(headers: Iterable[str], name: str = COOKIE) -> str | None:
    """The value of the last ``name`` cookie in ``headers``, or ``None`` (absent or empty)."""
    value: str | None = None
    for header in headers:
        for pair in header.split(";"):
            key, sep, raw = pair.partition("=")
            if sep and key.strip() == name:
                value = _unquote(raw.strip())
    return value or None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value
