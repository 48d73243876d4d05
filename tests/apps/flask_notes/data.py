"""A session's data: its keys, what each route does to it, and the view the routes answer.

The keys are the notes app's (tests/apps/notes/README.md)::

    {"_auth_user_id": "u-1001", "_auth_user_name": "Ann Lee",   # only when logged in
     "_csrf": "<token>", "created_at": 1733190000.25,           # every session
     "history": [{"page": "home", "at": 1733190001.5}],         # the last 5 visits
     "flash": {"ü": ["nested", 1, 2.5, null, true]},            # every session
     "prefs": {...}, "tags": [...], "visits": {...}, "draft": "..."}  # once written

(plus Flask-Session's ``_permanent`` and the kit's ``_strangler``). An import
may bring anything, so every reader takes what fits and ignores the rest.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

Data = dict[str, Any]

USER_ID, USER_NAME = "_auth_user_id", "_auth_user_name"
CSRF, CREATED_AT, HISTORY, FLASH = "_csrf", "created_at", "history", "flash"
PREFS, TAGS, VISITS, DRAFT = "prefs", "tags", "visits", "draft"
HISTORY_KEPT = 5
FLASH_VALUE: Any = {"ü": ["nested", 1, 2.5, None, True]}


def fresh(now: float) -> Data:
    """A new guest session's own keys."""
    return {CSRF: secrets.token_urlsafe(24), CREATED_AT: now, HISTORY: [],
            FLASH: copy.deepcopy(FLASH_VALUE)}


def logged_in(old: Data, uid: str, name: str, now: float) -> Data:
    """A login's data: a guest's (or the same user's) keys are kept, another user's
    flushed; the CSRF token is new either way."""
    carry = bool(old) and old.get(USER_ID) in (None, uid)
    base = copy.deepcopy(old) if carry else fresh(now)
    for key in (USER_ID, USER_NAME, CSRF):
        base.pop(key, None)
    return {USER_ID: uid, USER_NAME: name, CSRF: secrets.token_urlsafe(24), **base}


def user_of(data: Data) -> tuple[str, str] | None:
    uid, name = data.get(USER_ID), data.get(USER_NAME)
    return (uid, name) if isinstance(uid, str) and uid and isinstance(name, str) else None


def prefs_of(data: Data) -> dict[str, str]:
    prefs = data.get(PREFS)
    return {k: v for k, v in prefs.items() if isinstance(v, str)} \
        if isinstance(prefs, dict) else {}


def tags_of(data: Data) -> list[str]:
    tags = data.get(TAGS)
    return sorted({t for t in tags if isinstance(t, str)}) if isinstance(tags, list) else []


def visits_of(data: Data) -> dict[str, int]:
    visits = data.get(VISITS)
    if not isinstance(visits, dict):
        return {}
    return {k: v for k, v in visits.items() if type(v) is int and v > 0}


def draft_of(data: Data) -> str | None:
    draft = data.get(DRAFT)
    return draft if isinstance(draft, str) else None


def state_view(data: Data) -> dict[str, Any]:
    user = user_of(data)
    return {"user": {"id": user[0], "name": user[1]} if user else None,
            "prefs": prefs_of(data), "tags": tags_of(data), "visits": visits_of(data),
            "draft": draft_of(data)}


def set_pref(data: Data, key: str, value: str) -> None:
    data[PREFS] = {**prefs_of(data), key: value}


def delete_pref(data: Data, key: str) -> None:
    data[PREFS] = {k: v for k, v in prefs_of(data).items() if k != key}


def add_tag(data: Data, tag: str) -> None:
    data[TAGS] = sorted({*tags_of(data), tag})


def remove_tag(data: Data, tag: str) -> None:
    data[TAGS] = [t for t in tags_of(data) if t != tag]


def visit(data: Data, page: str, now: float) -> None:
    visits = visits_of(data)
    data[VISITS] = {**visits, page: visits.get(page, 0) + 1}
    history = data.get(HISTORY)
    data[HISTORY] = [*(history if isinstance(history, list) else []),
                     {"page": page, "at": now}][-HISTORY_KEPT:]


def set_draft(data: Data, text: str) -> None:
    data[DRAFT] = text
