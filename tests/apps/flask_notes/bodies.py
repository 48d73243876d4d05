"""Request JSON in, JSON out, and ``NotesError``: bad input is a 4xx, never a 500.

Strict like the notes app: ``NaN``/``Infinity``, numbers that overflow a
double and bad UTF-8 are 400 ``malformed_json``. Bodies over 256 KiB are 413
(Flask's ``MAX_CONTENT_LENGTH``, set in ``app``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Response, request

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class NotesError(Exception):
    """A refusal: ``{"error": code, ...}`` with ``status``."""

    def __init__(self, status: int, code: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code, self.extra = status, code, extra

    def response(self) -> Response:
        return json_response({"error": self.code, **self.extra}, self.status)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value, ensure_ascii=True, allow_nan=False), status=status,
                    mimetype="application/json")


def body_object() -> dict[str, Any]:
    try:
        value = json.loads(request.get_data().decode("utf-8"),
                           parse_constant=_refuse, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise NotesError(400, "malformed_json") from exc
    if not isinstance(value, dict):
        raise NotesError(400, "body_not_object")
    return value


def text_field(body: dict[str, Any], field: str, max_len: int, *, empty: bool = False) -> str:
    value = body.get(field)
    if not isinstance(value, str) or len(value) > max_len or (not value and not empty):
        raise NotesError(400, "invalid_field", field=field)
    return value


def path_name(value: str, what: str) -> str:
    """A pref key or page name: ``[A-Za-z0-9_.-]{1,64}``, else 400 ``invalid_<what>``."""
    if not _NAME.fullmatch(value):
        raise NotesError(400, f"invalid_{what}")
    return value


def tag_text(value: str) -> str:
    """1-40 characters, no control characters, no spaces at the edges."""
    if not 1 <= len(value) <= 40 or value != value.strip() \
            or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise NotesError(400, "invalid_tag")
    return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a double")
    return value
