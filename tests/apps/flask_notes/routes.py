"""Login, logout and the state routes, on ``flask.session`` (Flask-Session's).

Every write reads and checks its input first (a refused request creates no
session), computes the new data from a copy, and writes back only the keys
that changed (an unchanged session keeps its revision). A guest's first write
creates the session. Login rotates the id with ``strangler_flask.regenerate``.
"""

from __future__ import annotations

import copy
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, session
from strangler_flask import RESERVED_KEY, regenerate

from . import data
from .bodies import NotesError, body_object, json_response, path_name, tag_text, text_field

bp = Blueprint("notes", __name__)

USERS: dict[str, tuple[str, str, str]] = {  # username -> (id, display name, password)
    "ann": ("u-1001", "Ann Lee", "ann-pass"),
    "bo": ("u-1002", "Bo Chen", "bo-pass"),
    "cy": ("u-1003", "Cy Díaz", "cy-pass"),
    "dee": ("u-1004", "Dee O'Neil", "dee-pass"),
}
MAX_PREF_VALUE, MAX_DRAFT = 200, 10_000
_NOT_THE_APPS = ("_permanent", RESERVED_KEY)
"""Flask-Session's flag and the kit's revision: kept in the session, not the app's data."""


def _current() -> data.Data:
    """The session's data as the app sees it (a copy; empty for a visitor without one)."""
    return copy.deepcopy({k: v for k, v in session.items() if k not in _NOT_THE_APPS})


def _put(new: data.Data) -> None:
    """Write back the keys of ``new`` that differ (by their JSON text) from the session's."""
    old = _current()
    for key, value in new.items():
        if key not in old or _text(old[key]) != _text(value):
            session[key] = value
    for key in old.keys() - new.keys():
        del session[key]


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


def _write(change: Callable[[data.Data], None]) -> Response:
    new = _current() or data.fresh(time.time())
    change(new)
    _put(new)
    return json_response(data.state_view(new))


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"ok": True, "node": current_app.config["STRANGLER_NODE_ID"]})


@bp.post("/login")
def login() -> Response:
    body = body_object()
    username, password = text_field(body, "username", 200), text_field(body, "password", 200)
    uid, name, expected = USERS.get(username, ("", "", "\0 no such user"))
    if not hmac.compare_digest(password.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8")) or not uid:
        raise NotesError(401, "invalid_credentials")
    new = data.logged_in(_current(), uid, name, time.time())
    regenerate()
    _put(new)
    return json_response({"id": uid, "name": name})


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    return json_response({"logged_out": True})


@bp.get("/api/me")
def me() -> Response:
    user = data.user_of(_current())
    if user is None:
        raise NotesError(401, "not_logged_in")
    return json_response({"id": user[0], "name": user[1]})


@bp.get("/api/state")
def state() -> Response:
    return json_response(data.state_view(_current()))


@bp.put("/api/prefs/<key>")
def put_pref(key: str) -> Response:
    key = path_name(key, "key")
    value = text_field(body_object(), "value", MAX_PREF_VALUE, empty=True)
    return _write(lambda d: data.set_pref(d, key, value))


@bp.delete("/api/prefs/<key>")
def delete_pref(key: str) -> Response:
    key = path_name(key, "key")
    return _write(lambda d: data.delete_pref(d, key))


@bp.post("/api/tags")
def add_tag() -> Response:
    tag = tag_text(text_field(body_object(), "tag", 40))
    return _write(lambda d: data.add_tag(d, tag))


@bp.delete("/api/tags/<tag>")
def remove_tag(tag: str) -> Response:
    tag = tag_text(tag)
    return _write(lambda d: data.remove_tag(d, tag))


@bp.post("/api/visits/<page>")
def visit(page: str) -> Response:
    page = path_name(page, "page")
    return _write(lambda d: data.visit(d, page, time.time()))


@bp.put("/api/draft")
def put_draft() -> Response:
    text = text_field(body_object(), "text", MAX_DRAFT, empty=True)
    return _write(lambda d: data.set_draft(d, text))
