"""Strict JSON in and out, and a request body read up to a limit.

Parsing refuses what Python's ``json`` lets through: ``NaN``/``Infinity``,
numbers that overflow a float, and values nested deeper than ``MAX_DEPTH``.
Integers stay Python ints (exact at any size) and floats are parsed from their
text, so what is accepted is written back as the same JSON value (``1`` stays
``1``, ``1.0`` stays a float, ``5e-324`` keeps its bits).
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.http import HttpRequest, HttpResponse

MAX_DEPTH = 64
"""The deepest a session's data may nest; an import body nests one more (its envelope)."""
_DRAIN_LIMIT = 16 * 1024 * 1024
_CHUNK = 64 * 1024


class BodyError(Exception):
    """A body the hook refuses: ``status`` (400 or 413) and an error code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The whole body, or ``BodyError`` 413 past ``limit`` bytes (declared or sent).

    An oversize body is read and dropped (up to 16 MiB) before the answer, so the
    client, still sending, hears the 413 instead of a reset connection.
    """
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit():
        raise BodyError(400, "bad_request", "Content-Length is not a number")
    if int(declared) > limit:
        _drain(request, int(declared))
        raise BodyError(413, "body_too_large", f"an import is at most {limit} bytes")
    raw: bytes = request.read(limit + 1)
    if len(raw) > limit:
        raise BodyError(413, "body_too_large", f"an import is at most {limit} bytes")
    return raw


def _drain(request: HttpRequest, declared: int) -> None:
    left = min(declared, _DRAIN_LIMIT)
    while left > 0:
        chunk = request.read(min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)


def parse_json(raw: bytes) -> Any:
    """Any JSON value, or ``BodyError`` 400 (not UTF-8, not JSON, or too deep)."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant,
                           parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BodyError(400, "malformed_json", f"the body is not JSON: {exc}") from None
    if depth(value) > MAX_DEPTH + 1:
        raise BodyError(400, "too_deep", f"data nests deeper than {MAX_DEPTH}")
    return value


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar: 0), without recursing."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def dumps(value: Any) -> str:
    """JSON text; ``TypeError``/``ValueError`` for a value JSON cannot hold.

    ASCII-only on purpose: a lone surrogate (valid in a JSON string escape)
    survives as its escape instead of failing to encode.
    """
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def json_response(value: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(dumps(value), status=status, content_type="application/json")


def error_response(status: int, code: str, detail: str) -> HttpResponse:
    return json_response({"error": code, "detail": detail}, status)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value
