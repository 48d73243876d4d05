"""A session's data: its shape, what the routes do to it, and the view of it they answer.

The data is a JSON object, exactly what the export hook's ``data`` holds::

    {"_auth_user_id": "u-1001", "_auth_user_name": "Ann Lee",   # only when logged in
     "_csrf": "<token>", "created_at": 1733190000.25,           # every session
     "history": [{"page": "home", "at": 1733190001.5}, ...],    # the last 5 visits
     "flash": {"ü": ["nested", 1, 2.5, null, true]},            # every session
     "prefs": {"theme": "dark"},        # once a pref was set: string -> string
     "tags": ["urgent", "work"],        # once a tag was added: a sorted set of strings
     "visits": {"home": 3},             # once a page was visited: page -> count > 0
     "draft": "text"}                   # once a draft was saved: a string

``_csrf``, ``created_at``, ``history`` and ``flash`` are the app's own: a
gateway profile would not declare them, and they must survive any round trip
byte for byte (a unicode key, floats, nested arrays mixing every JSON type).

Nothing here trusts the data's types: an import stores whatever object it is
given, so every reader below takes what fits and ignores the rest, and every
writer replaces a field it cannot read with a clean one.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

from .errors import NotesError
from .users import User

Data = dict[str, Any]

USER_ID, USER_NAME = "_auth_user_id", "_auth_user_name"
CSRF, CREATED_AT, HISTORY, FLASH = "_csrf", "created_at", "history", "flash"
PREFS, TAGS, VISITS, DRAFT = "prefs", "tags", "visits", "draft"

HISTORY_KEPT = 5
MAX_PREFS, MAX_TAGS, MAX_PAGES = 32, 50, 100
FLASH_VALUE: Any = {"ü": ["nested", 1, 2.5, None, True]}


def fresh(now: float) -> Data:
    """A new guest session's data."""
    return {CSRF: secrets.token_urlsafe(24), CREATED_AT: now, HISTORY: [],
            FLASH: copy.deepcopy(FLASH_VALUE)}


def logged_in(old: Data | None, user: User, now: float) -> Data:
    """The data of the session a login makes.

    Like Django's ``login()``: what a guest (or the same user) had is kept --
    prefs, tags, draft carry over into the new session -- but another user's
    session is flushed. Either way the CSRF token is new.
    """
    carry = old is not None and old.get(USER_ID) in (None, user.id)
    base = copy.deepcopy(old) if old is not None and carry else fresh(now)
    for key in (USER_ID, USER_NAME, CSRF):
        base.pop(key, None)
    return {USER_ID: user.id, USER_NAME: user.name, CSRF: secrets.token_urlsafe(24), **base}


# --- readers: take what fits, ignore the rest -------------------------------

def user_of(data: Data) -> tuple[str, str] | None:
    uid, name = data.get(USER_ID), data.get(USER_NAME)
    if isinstance(uid, str) and uid and isinstance(name, str):
        return uid, name
    return None


def prefs_of(data: Data) -> dict[str, str]:
    prefs = data.get(PREFS)
    if not isinstance(prefs, dict):
        return {}
    return {k: v for k, v in prefs.items() if isinstance(v, str)}


def tags_of(data: Data) -> list[str]:
    tags = data.get(TAGS)
    return sorted({t for t in tags if isinstance(t, str)}) if isinstance(tags, list) else []


def visits_of(data: Data) -> dict[str, int]:
    visits = data.get(VISITS)
    if not isinstance(visits, dict):
        return {}
    return {k: v for k, v in visits.items()
            if isinstance(v, int) and not isinstance(v, bool) and v > 0}


def draft_of(data: Data) -> str | None:
    draft = data.get(DRAFT)
    return draft if isinstance(draft, str) else None


def state_view(data: Data | None) -> dict[str, Any]:
    """What ``GET /api/state`` and every write answer (a guest without a session: all empty)."""
    data = data or {}
    user = user_of(data)
    return {
        "user": {"id": user[0], "name": user[1]} if user else None,
        "prefs": prefs_of(data),
        "tags": tags_of(data),
        "visits": visits_of(data),
        "draft": draft_of(data),
    }


# --- writers: mutate ``data`` in place (callers hand in a copy) ------------

def set_pref(data: Data, key: str, value: str) -> None:
    prefs = prefs_of(data)
    if key not in prefs and len(prefs) >= MAX_PREFS:
        raise NotesError(400, "too_many_prefs", limit=MAX_PREFS)
    prefs[key] = value
    data[PREFS] = prefs


def delete_pref(data: Data, key: str) -> None:
    prefs = prefs_of(data)
    prefs.pop(key, None)
    data[PREFS] = prefs


def add_tag(data: Data, tag: str) -> None:
    tags = tags_of(data)
    if tag not in tags and len(tags) >= MAX_TAGS:
        raise NotesError(400, "too_many_tags", limit=MAX_TAGS)
    data[TAGS] = sorted({*tags, tag})


def remove_tag(data: Data, tag: str) -> None:
    data[TAGS] = [t for t in tags_of(data) if t != tag]


def visit(data: Data, page: str, now: float) -> None:
    """Count a visit to ``page`` and remember it in the history (the last five)."""
    visits = visits_of(data)
    if page not in visits and len(visits) >= MAX_PAGES:
        raise NotesError(400, "too_many_pages", limit=MAX_PAGES)
    visits[page] = visits.get(page, 0) + 1
    data[VISITS] = visits
    history = data.get(HISTORY)
    kept = history if isinstance(history, list) else []
    data[HISTORY] = [*kept, {"page": page, "at": now}][-HISTORY_KEPT:]


def set_draft(data: Data, text: str) -> None:
    data[DRAFT] = text


def set_raw(data: Data, key: str, value: Any) -> None:
    """Store any JSON value as-is (tests make sessions no profile fits)."""
    data[key] = value
