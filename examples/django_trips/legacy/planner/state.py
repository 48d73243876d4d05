"""The session-held state (examples/django_trips/CONTRACT.md): pure rules on plain values.

Each function takes the current value as the session holds it (or ``None``)
and returns the new one; views write it back only when it changed, so a
request that changes nothing does not move the session's revision.
"""

from __future__ import annotations

import re
from typing import Any

PREF_KEY = re.compile(r"[a-z_]{1,32}")
SLUG = re.compile(r"[a-z0-9-]{1,40}")
STEPS = ("where", "when", "who")
RECENT_MAX = 10
WIZARD_MAX_KEYS = 20
WIZARD_KEY_MAX = 64
WIZARD_TEXT_MAX = 500
PREF_VALUE_MAX = 200
DRAFT_MAX = 2000
EMPTY: dict[str, Any] = {"prefs": {}, "saved": [], "views": {}, "recent": [], "wizard": {},
                         "draft": None}


class Invalid(ValueError):
    """Input out of the contract's bounds (a 400)."""


def snapshot(session: Any) -> dict[str, Any]:
    """The state part of ``/api/state``: each key as the session holds it, or its empty value."""
    return {key: session.get(key, empty) for key, empty in EMPTY.items()}


def set_pref(prefs: dict[str, str] | None, key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, str) or not 1 <= len(value) <= PREF_VALUE_MAX:
        raise Invalid(f"value must be text of 1 to {PREF_VALUE_MAX} characters")
    return {**(prefs or {}), key: value}


def drop_pref(prefs: dict[str, str] | None, key: str) -> dict[str, str]:
    return {k: v for k, v in (prefs or {}).items() if k != key}


def add_saved(saved: list[str] | None, slug: str) -> list[str]:
    return sorted({*(saved or []), slug})


def drop_saved(saved: list[str] | None, slug: str) -> list[str]:
    return sorted(s for s in (saved or []) if s != slug)


def viewed(views: dict[str, int] | None, recent: list[str] | None,
           slug: str) -> tuple[dict[str, int], list[str]]:
    counts = dict(views or {})
    counts[slug] = counts.get(slug, 0) + 1
    return counts, [slug, *(s for s in (recent or []) if s != slug)][:RECENT_MAX]


def wizard_answers(body: Any) -> dict[str, Any]:
    """A step's answers: an object of at most 20 text keys (1-64) and scalar values."""
    if not isinstance(body, dict) or len(body) > WIZARD_MAX_KEYS:
        raise Invalid(f"a step's answers are an object of at most {WIZARD_MAX_KEYS} keys")
    for key, value in body.items():
        if not 1 <= len(key) <= WIZARD_KEY_MAX:
            raise Invalid(f"an answer's key is 1 to {WIZARD_KEY_MAX} characters")
        if isinstance(value, str) and len(value) > WIZARD_TEXT_MAX:
            raise Invalid(f"an answer's text is at most {WIZARD_TEXT_MAX} characters")
        if not (value is None or isinstance(value, str | int | float | bool)):
            raise Invalid("an answer is text, a number, a boolean or null")
    return body


def set_step(wizard: dict[str, Any] | None, step: str, answers: dict[str, Any]) -> dict[str, Any]:
    return {**(wizard or {}), step: answers}


def wizard_complete(wizard: dict[str, Any] | None) -> bool:
    return all(isinstance((wizard or {}).get(step), dict) for step in STEPS)


def destination_of(wizard: dict[str, Any]) -> str | None:
    """The booking's destination: ``wizard["where"]["destination"]`` when it is a slug."""
    value = wizard.get("where", {}).get("destination")
    return value if isinstance(value, str) and SLUG.fullmatch(value) else None


def draft_text(body: Any) -> str | None:
    if not isinstance(body, dict) or "text" not in body:
        raise Invalid('body must be {"text": text or null}')
    text = body["text"]
    if text is not None and (not isinstance(text, str) or len(text) > DRAFT_MAX):
        raise Invalid(f"text is up to {DRAFT_MAX} characters, or null")
    return text


def valid_key(text: str) -> bool:
    """An Idempotency-Key: 1-255 printable ASCII characters."""
    return 1 <= len(text) <= 255 and all(" " <= c <= "~" for c in text)
