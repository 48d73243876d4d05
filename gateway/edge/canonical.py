"""One canonical path, used both to match a route and to forward.

``/api/%2e%2e/admin``, ``/api/../admin`` and ``/api//cart`` all become what a
backend would resolve them to *before* the route is matched, and that same
path is what is forwarded, so no encoding trick can make the gateway match
one route while the backend serves another. What cannot be made canonical
safely is refused with 400: ``%2F`` and ``%5C`` (an encoded separator means
different things to different servers), ``;`` path parameters, ``%00`` and
control characters, and bytes that are not UTF-8.

The common case -- a plain ASCII path -- is one character-class check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from gateway.errors import BadPath, UriTooLong

# Anything that is not plain: %, ;, backslash, dot-segments, //, non-printable, non-ASCII.
_NEEDS_WORK = re.compile(r"[%;\\]|/\.|//|[^\x21-\x7e]")
_BAD_DECODED = re.compile(rb"[\x00-\x1f\x7f/\\]")
_SAFE = "/:@!$&'()*+,=-._~"


@dataclass(frozen=True, slots=True)
class Target:
    path: str
    """Decoded canonical path, for matching."""
    forward: str
    """Encoded canonical path plus the original query, for the upstream request line."""


def canonical(raw: str, max_bytes: int) -> Target:
    """Turn the raw request target into a ``Target``; raise BadPath or UriTooLong."""
    if len(raw) > max_bytes:
        raise UriTooLong(f"request target longer than {max_bytes} bytes")
    if "#" in raw:
        # Never valid in a request target, and yarl would drop it when forwarding:
        # the gateway would match one path and the backend serve another.
        raise BadPath("a fragment ('#') is not part of a request target")
    path, sep, query = raw.partition("?")
    if query and ("%" in query or _NEEDS_WORK.search(query.replace(";", ""))):
        _check_query(query)
    if not path.startswith("/"):
        raise BadPath("the request target must be an absolute path")
    if _NEEDS_WORK.search(path) is None:
        return Target(path, raw)
    decoded = _decode(path)
    resolved = _remove_dot_segments(decoded)
    forward = quote(resolved, safe=_SAFE)
    return Target(resolved, forward + sep + query)


def _decode(path: str) -> str:
    if ";" in path:
        raise BadPath("';' path parameters are not accepted")
    if "\\" in path:
        raise BadPath("backslash in path")
    segments = path.split("/")
    out = []
    for seg in segments:
        if "%" in seg:
            if re.search(r"%(?![0-9A-Fa-f]{2})", seg):
                raise BadPath("malformed percent-encoding in path")
            raw = unquote_to_bytes(seg)
            if _BAD_DECODED.search(raw):
                raise BadPath("encoded separator or control character in path")
        else:
            raw = seg.encode("utf-8", "surrogateescape")
            if _BAD_DECODED.search(raw):
                raise BadPath("control character in path")
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadPath("path is not valid UTF-8") from None
    return "/".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, plus empty segments collapse (``//`` -> ``/``)."""
    stack: list[str] = []
    parts = path.split("/")[1:]
    for i, seg in enumerate(parts):
        last = i == len(parts) - 1
        if seg == "..":
            if stack:
                stack.pop()
            if last:
                stack.append("")
        elif seg == ".":
            if last:
                stack.append("")
        elif seg == "":
            if last:
                stack.append("")
        else:
            stack.append(seg)
    return "/" + "/".join(stack)


def _check_query(query: str) -> None:
    if re.search(r"[\x00-\x20\x7f]", query):
        raise BadPath("control character in query")
    if re.search(r"%(?![0-9A-Fa-f]{2})", query):
        raise BadPath("malformed percent-encoding in query")
    raw = unquote_to_bytes(query.replace("+", " "))
    if b"\x00" in raw:
        raise BadPath("%00 in query")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("query is not valid UTF-8") from None
