"""JSON in and out: untrusted bytes become values or a ``NotesError`` (400/413), never a 500.

Parsing is strict where Python's ``json`` is lax: ``NaN``/``Infinity`` and
numbers that overflow a float are refused (they could not be written back as
JSON), so anything accepted is answered again byte for byte.
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
    """Any JSON value; 400 ``malformed_json`` for anything else (bad UTF-8 included)."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant,
                          parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise NotesError(400, "malformed_json") from exc


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
