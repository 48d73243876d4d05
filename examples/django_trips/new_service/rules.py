"""The contract's input rules (CONTRACT.md), as the Django app applies them: every
violation is a 400 ``bad_request`` (or the 404 the contract names), never a 500."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from strangler_sdk.errors import BadRequest, HttpError

PREF_KEY: Final = re.compile(r"[a-z_]{1,32}")
SLUG: Final = re.compile(r"[a-z0-9-]{1,40}")
STEPS: Final = ("where", "when", "who")
RECENT_MAX: Final = 10
WIZARD_MAX_KEYS: Final = 20
WIZARD_KEY_MAX: Final = 64
WIZARD_TEXT_MAX: Final = 500
PREF_VALUE_MAX: Final = 200
DRAFT_MAX: Final = 2000
MAX_BODY_BYTES: Final = 64 * 1024


class NotFound(HttpError):
    status = 404
    code = "not_found"
    detail = "no such resource"


def body_json(raw: bytes) -> Any:
    """The request's JSON body: no NaN/Infinity, no number that overflows a float."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"a body is at most {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse, parse_float=_finite)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not JSON") from None


def body_object(raw: bytes) -> dict[str, Any]:
    value = body_json(raw)
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object")
    return value


def pref_key(key: str) -> str:
    if not PREF_KEY.fullmatch(key):
        raise BadRequest("a pref key is 1 to 32 of [a-z_]")
    return key


def pref_value(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= PREF_VALUE_MAX:
        raise BadRequest(f"value must be text of 1 to {PREF_VALUE_MAX} characters")
    return value


def step(name: str) -> str:
    if name not in STEPS:
        raise NotFound(f"a wizard step is one of {', '.join(STEPS)}")
    return name


def wizard_answers(body: Any) -> dict[str, Any]:
    """A step's answers: an object of at most 20 text keys (1-64) and scalar values."""
    if not isinstance(body, dict) or len(body) > WIZARD_MAX_KEYS:
        raise BadRequest(f"a step's answers are an object of at most {WIZARD_MAX_KEYS} keys")
    for key, value in body.items():
        if not 1 <= len(key) <= WIZARD_KEY_MAX:
            raise BadRequest(f"an answer's key is 1 to {WIZARD_KEY_MAX} characters")
        if isinstance(value, str) and len(value) > WIZARD_TEXT_MAX:
            raise BadRequest(f"an answer's text is at most {WIZARD_TEXT_MAX} characters")
        if not (value is None or isinstance(value, str | int | float | bool)):
            raise BadRequest("an answer is text, a number, a boolean or null")
    return body


def draft_text(body: Any) -> str | None:
    if not isinstance(body, dict) or "text" not in body:
        raise BadRequest('body must be {"text": text or null}')
    text = body["text"]
    if text is not None and (not isinstance(text, str) or len(text) > DRAFT_MAX):
        raise BadRequest(f"text is up to {DRAFT_MAX} characters, or null")
    return text


def recent_after(recent: list[str], slug: str) -> list[str]:
    """``slug`` moved to the front, no duplicates, at most ``RECENT_MAX``."""
    return [slug, *(s for s in recent if s != slug)][:RECENT_MAX]


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float")
    return value
