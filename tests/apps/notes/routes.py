"""The app's own routes: JSON under /api, login/logout, and one HTML page.

Every write reads and checks its input first (a refused request never creates
a session), then changes a copy of the session's data and commits it: a guest
without a session gets one. Every write answers the new ``/api/state``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import data
from .bodies import (
    MAX_DEPTH,
    depth,
    json_response,
    parse_json,
    parse_object,
    path_name,
    read_body,
    tag_text,
    text_field,
)
from .errors import NotesError
from .store import canonical
from .web import SETTINGS, USERS, commit, current, log_in, log_out, working_copy

MAX_PREF_VALUE, MAX_DRAFT, MAX_RAW_KEY = 200, 10_000, 128
MAX_DATA_BYTES = 192 * 1024
"""A session the app writes stays well under the hook's body limit, so it can be imported."""

ABOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>About notes</title></head>
<body><h1>notes</h1><p>A small note-taking app. This page is served by the old app only.</p>
</body></html>
"""


async def healthz(request: web.Request) -> web.Response:
    return json_response({"ok": True, "node": request.app[SETTINGS].node_id})


async def about(request: web.Request) -> web.Response:
    """Legacy-only HTML; needs no session and never makes one."""
    return web.Response(text=ABOUT, content_type="text/html", charset="utf-8")


async def login(request: web.Request) -> web.Response:
    body = parse_object(await read_body(request))
    username = text_field(body, "username", 200)
    password = text_field(body, "password", 200)
    user = request.app[USERS].authenticate(username, password)
    if user is None:
        raise NotesError(401, "invalid_credentials")
    log_in(request, user)
    return json_response({"id": user.id, "name": user.name})


async def logout(request: web.Request) -> web.Response:
    log_out(request)
    return json_response({"logged_out": True})


async def me(request: web.Request) -> web.Response:
    session = current(request)
    user = data.user_of(session.data) if session else None
    if user is None:
        raise NotesError(401, "not_logged_in")
    return json_response({"id": user[0], "name": user[1]})


async def state(request: web.Request) -> web.Response:
    session = current(request)
    return json_response(data.state_view(session.data if session else None))


def _write(request: web.Request, change: Callable[[data.Data], None]) -> web.Response:
    """Apply ``change`` to the request's session (made if missing); answer the new state."""
    new = working_copy(request)
    change(new)
    if len(canonical(new)) > MAX_DATA_BYTES:
        raise NotesError(413, "session_too_large", limit=MAX_DATA_BYTES)
    if depth(new) > MAX_DEPTH:
        raise NotesError(400, "too_deep", limit=MAX_DEPTH)
    return json_response(data.state_view(commit(request, new).data))


async def put_pref(request: web.Request) -> web.Response:
    key = path_name(request.match_info["key"], "key")
    value = text_field(parse_object(await read_body(request)), "value", MAX_PREF_VALUE,
                       empty=True)
    return _write(request, lambda d: data.set_pref(d, key, value))


async def delete_pref(request: web.Request) -> web.Response:
    key = path_name(request.match_info["key"], "key")
    return _write(request, lambda d: data.delete_pref(d, key))


async def add_tag(request: web.Request) -> web.Response:
    tag = tag_text(text_field(parse_object(await read_body(request)), "tag", 40))
    return _write(request, lambda d: data.add_tag(d, tag))


async def remove_tag(request: web.Request) -> web.Response:
    tag = tag_text(request.match_info["tag"])
    return _write(request, lambda d: data.remove_tag(d, tag))


async def visit(request: web.Request) -> web.Response:
    page = path_name(request.match_info["page"], "page")
    return _write(request, lambda d: data.visit(d, page, time.time()))


async def put_draft(request: web.Request) -> web.Response:
    text = text_field(parse_object(await read_body(request)), "text", MAX_DRAFT, empty=True)
    return _write(request, lambda d: data.set_draft(d, text))


async def put_raw(request: web.Request) -> web.Response:
    """Test hook: store any JSON value under ``key`` as-is (e.g. prefs set to a number)."""
    key = request.match_info["key"]
    if not 1 <= len(key) <= MAX_RAW_KEY:
        raise NotesError(400, "invalid_key")
    value: Any = parse_json(await read_body(request))
    return _write(request, lambda d: data.set_raw(d, key, value))


async def get_raw(request: web.Request) -> web.Response:
    """Test hook: the session's whole data, written exactly as the export writes it."""
    session = current(request)
    if session is None:
        raise NotesError(404, "no_session")
    return json_response(session.data)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", healthz, allow_head=False)
    r.add_get("/about", about)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/api/me", me, allow_head=False)
    r.add_get("/api/state", state, allow_head=False)
    r.add_put("/api/prefs/{key}", put_pref)
    r.add_delete("/api/prefs/{key}", delete_pref)
    r.add_post("/api/tags", add_tag)
    r.add_delete("/api/tags/{tag}", remove_tag)
    r.add_post("/api/visits/{page}", visit)
    r.add_put("/api/draft", put_draft)
    r.add_put("/api/debug/raw/{key}", put_raw)
    r.add_get("/api/debug/raw", get_raw, allow_head=False)
