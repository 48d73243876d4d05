"""``RevisionMiddleware``: a revision per session, and the three headers on every response.

Place it right after ``django.contrib.sessions.middleware.SessionMiddleware``
(checked at start). Its ``process_response`` runs before SessionMiddleware's,
so the revision it writes into the session is part of the save that follows:

- a change the app made (``request.session.modified``) on a response Django
  will save (status < 500, session not emptied): revision + 1, counted from the
  higher of the revision the request loaded and the one the engine holds now;
- a new session: revision 1, saved here at once so the headers can name its id;
- a login (``cycle_key``) carries the data, revision included, to the new id:
  the count goes on.

Between loading a session and saving it a request can be overtaken: an import
(the gateway pushing a newer session) or another request of the same session
may have saved meanwhile. Django would write the whole session back and undo
that. Here, when the engine's revision is not the one the request loaded, only
the keys this request changed are applied onto what the engine holds now, and
the session's lock (``locks``) is held from that read until SessionMiddleware's
save is done, so no import lands in between. (Within one process; README.md.)

Headers, on every response to a request that carried the session cookie or
created a session: the session id the request ended with (the cookie's when
the session is gone), its revision (0 when it does not exist: never existed,
logged out, expired, lost), and the node id.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from strangler_django import conf, locks, sessions
from strangler_django.revision import RESERVED, REV_KEY, revision_of, revision_value

Handler = Callable[[HttpRequest], HttpResponseBase]
_LOADED = "_strangler_loaded"
"""The request attribute holding the session's data as the request loaded it."""


class RevisionMiddleware(MiddlewareMixin):  # type: ignore[misc]  # Django ships no stubs
    def __init__(self, get_response: Handler) -> None:
        conf.check_environment()
        self._settings = conf.get()
        super().__init__(get_response)

    def process_request(self, request: HttpRequest) -> None:
        session: SessionBase | None = getattr(request, "session", None)
        if session is not None and settings.SESSION_COOKIE_NAME in request.COOKIES:
            data = dict(session.items())  # loads it now: what this request starts from
            if session.session_key is not None:
                setattr(request, _LOADED, copy.deepcopy(data))

    def process_response(self, request: HttpRequest,
                         response: HttpResponseBase) -> HttpResponseBase:
        session: SessionBase | None = getattr(request, "session", None)
        if session is None:
            return response
        cookie_sid = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if session.modified and response.status_code < 500 and _will_be_saved(session):
            try:
                _bump(session, cookie_sid, getattr(request, _LOADED, None), response)
            except locks.Busy:
                session.modified = False  # nothing is saved: the client is told to retry
                response = _busy()
        if session.session_key is None and not cookie_sid:
            return response
        current = session.get(REV_KEY)  # loads the session if nothing did
        sid = session.session_key
        names = self._settings
        response[names.session_header] = sid or cookie_sid or ""
        response[names.revision_header] = str(revision_value(current) if sid else 0)
        response[names.node_header] = names.node_id
        return response


def _busy() -> HttpResponseBase:
    response = JsonResponse({"error": "session_busy",
                             "detail": "the session is being updated; retry shortly"},
                            status=503)
    response["Retry-After"] = "1"
    return response


def _will_be_saved(session: SessionBase) -> bool:
    """SessionMiddleware saves a modified session unless it is empty (flushed, logged out)."""
    return session.session_key is not None or any(k not in RESERVED for k in session.keys())


def _bump(session: SessionBase, cookie_sid: str | None, loaded: dict[str, Any] | None,
          response: HttpResponseBase) -> None:
    sid = session.session_key
    if sid is None:
        session[REV_KEY] = 1
        session.save()  # creates it now, under a new id the headers can report
        return
    carried = session.get(REV_KEY)
    if sid != cookie_sid or loaded is None:
        # made during this request (``cycle_key`` at login): no one else knows the id yet,
        # and the data it carried holds the count so far (none: a brand-new session)
        session[REV_KEY] = (carried if type(carried) is int and carried > 0 else 0) + 1
        return
    release = locks.take(sid)
    try:
        now = sessions.stored(sid)
        started = revision_of(loaded, True)
        latest = revision_of(now or {}, now is not None)
        if now is not None and latest != started:
            _apply_changes(session, loaded, now)
        session[REV_KEY] = max(started, latest) + 1
        _release_after_save(session, response, release)
    except BaseException:
        release()
        raise


def _apply_changes(session: SessionBase, loaded: dict[str, Any], now: dict[str, Any]) -> None:
    """Make the session ``now`` plus the keys this request changed since ``loaded``."""
    mine = dict(session.items())
    merged = dict(now)
    for key in (set(mine) | set(loaded)) - RESERVED:
        if key in mine and (key not in loaded or not same(mine[key], loaded[key])):
            merged[key] = mine[key]
        elif key not in mine and key in loaded:
            merged.pop(key, None)
    session.clear()
    session.update(merged)


def _release_after_save(session: SessionBase, response: HttpResponseBase,
                        release: Callable[[], None]) -> None:
    """Release the lock once SessionMiddleware's save is done, or at the latest when the
    response is closed (should something between here and that save fail)."""
    save = session.save

    def save_then_release(must_create: bool = False) -> None:
        try:
            save(must_create=must_create)
        finally:
            release()

    session.save = save_then_release  # this request's session object only
    closers: list[Callable[[], None]] = response._resource_closers
    closers.append(release)


def same(a: Any, b: Any) -> bool:
    """Equal as typed values: ``1``, ``1.0`` and ``True`` differ, as they do in JSON."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
