"""JSON in and out: untrusted bytes become values or a ``NotesError`` (400/413), never a 500.

Parsing is strict where Python's ``json`` is lax: ``NaN``/``Infinity`` and
numbers that overflow a float are refused (they could not be written back as
JSON), so anything accepted is answered again byte for byte. Values nested
deeper than ``MAX_DEPTH`` are refused too: left to Python, the limit would be
wherever the interpreter's recursion runs out, a little differently in each
code path (parsing, copying, writing), and a session that one path accepted
could make another answer 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web

from .errors import NotesError
from .store import canonical

MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 64
"""The deepest a session's data may nest; a body may nest one more (the import's envelope)."""
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, or 413 ``body_too_large`` past ``limit`` bytes (declared or sent)."""
    if request.content_length is not None and request.content_length > limit:
        raise NotesError(413, "body_too_large", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise NotesError(413, "body_too_large", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """Any JSON value; 400 ``malformed_json`` for anything else (bad UTF-8 included),
    400 ``too_deep`` past ``MAX_DEPTH + 1`` nested arrays and objects."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant,
                           parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise NotesError(400, "malformed_json") from exc
    if depth(value) > MAX_DEPTH + 1:
        raise NotesError(400, "too_deep", limit=MAX_DEPTH)
    return value


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar: 0), without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_object(raw: bytes) -> dict[str, Any]:
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise NotesError(400, "body_not_object")
    return value


def text_field(body: dict[str, Any], field: str, max_len: int, *, empty: bool = False) -> str:
    """``body[field]`` as a string of at most ``max_len`` characters, else 400 ``invalid_field``."""
    value = body.get(field)
    if not isinstance(value, str) or len(value) > max_len or (not value and not empty):
        raise NotesError(400, "invalid_field", field=field)
    return value


def path_name(value: str, what: str) -> str:
    """A pref key or page name from the path: ``[A-Za-z0-9_.-]{1,64}``, else 400."""
    if not _NAME.fullmatch(value):
        raise NotesError(400, f"invalid_{what}")
    return value


def tag_text(value: str) -> str:
    """A tag: 1-40 characters, any unicode but no control characters and no edge spaces."""
    if not 1 <= len(value) <= 40 or value != value.strip() \
            or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise NotesError(400, "invalid_tag")
    return value


def json_response(value: Any, status: int = 200) -> web.Response:
    """Written by ``store.canonical``: the same text the store compares and exports."""
    return web.Response(text=canonical(value), status=status, content_type="application/json")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value
